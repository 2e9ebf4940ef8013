//! Typed identifiers: volume ids, LV names, IQNs and node ids, never bare strings.
//!
//! Invariants:
//! - an [`LvName`] derived from an untrusted CSI name is always a valid LVM name made only of
//!   `[a-z0-9-]`, at most 61 bytes, and two different CSI names never yield the same one (a
//!   96-bit SHA-256 prefix of the whole name, plus a tag check by the controller on reuse);
//! - a [`VolumeId`] is the LV name, so it is also valid inside an IQN and a configfs path;
//! - an [`Iqn`] is lowercase `iqn.`/`eui.`/`naa.` form in `[a-z0-9.:-]`, at most 223 bytes;
//! - a [`NodeId`] is the node's initiator IQN, so the controller needs no Kubernetes API.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A logical volume name inside the configured volume group.
    LvName
);
string_id!(
    /// A CSI volume id: the LV name of the volume.
    VolumeId
);
string_id!(
    /// An iSCSI qualified name (target or initiator).
    Iqn
);
string_id!(
    /// A CSI node id: the node's initiator IQN.
    NodeId
);

const HASH_HEX: usize = 24;
const SLUG_MAX: usize = 32;

/// Hex SHA-256 of `input`.
pub fn sha256_hex(input: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(input)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// A readable, safe fragment of an untrusted name: `[a-z0-9]` runs joined by `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= SLUG_MAX {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

fn derived(kind: &str, name: &str) -> String {
    let hash = &sha256_hex(name.as_bytes())[..HASH_HEX];
    match slug(name) {
        s if s.is_empty() => format!("{kind}-{hash}"),
        s => format!("{kind}-{s}-{hash}"),
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

impl LvName {
    /// The LV name for a volume with CSI name `name` (any Unicode; untrusted).
    pub fn for_volume(name: &str) -> Self {
        Self(derived("csi", name))
    }

    /// The LV name for a snapshot with CSI name `name` (any Unicode; untrusted).
    pub fn for_snapshot(name: &str) -> Self {
        Self(derived("snap", name))
    }

    /// Accepts an existing LV name only if it has the shape Carve derives.
    pub fn parse(raw: &str) -> Result<Self> {
        let ok = (1..=64).contains(&raw.len())
            && (raw.starts_with("csi-") || raw.starts_with("snap-"))
            && raw.chars().all(is_id_char)
            && !raw.ends_with('-');
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(Error::invalid_argument(format!(
                "{raw:?} is not a Carve volume or snapshot id"
            )))
        }
    }
}

impl VolumeId {
    /// The id of the volume stored in `lv`.
    pub fn from_lv(lv: &LvName) -> Self {
        Self(lv.0.clone())
    }

    /// Parses an untrusted volume id from a request.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid_argument("volume id is required"));
        }
        LvName::parse(raw).map(|lv| Self(lv.0))
    }

    /// Looks up an untrusted volume id from a request whose spec rows answer an unknown volume
    /// with NOT_FOUND (or OK, for the idempotent teardown RPCs): empty is `InvalidArgument` (a
    /// missing field); any other string Carve could never have issued (not `csi-` followed by
    /// `[a-z0-9-]`, at most 64 bytes; a snapshot id included) is `Ok(None)`, a volume that does
    /// not exist, never `InvalidArgument`.
    pub fn lookup(raw: &str) -> Result<Option<Self>> {
        if raw.is_empty() {
            return Err(Error::invalid_argument("volume_id is required"));
        }
        Ok(Self::parse(raw)
            .ok()
            .filter(|v| v.as_str().starts_with("csi-")))
    }

    /// The LV holding this volume.
    pub fn lv_name(&self) -> LvName {
        LvName(self.0.clone())
    }

    /// The unit serial LIO reports for this volume (vpd page 0x80), UUID-shaped hex.
    pub fn unit_serial(&self) -> String {
        let h = sha256_hex(self.0.as_bytes());
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl Iqn {
    /// Parses an iSCSI name (`iqn.`, `eui.` or `naa.`) by its full grammar and normalizes it
    /// to lower case (see [`crate::iscsi_name`]; RFC 3720 §3.2.6, RFC 3722, RFC 3980).
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        crate::iscsi_name::normalize(raw).map(Self).map_err(|why| {
            Error::invalid_argument(format!("{raw:?} is not a valid iSCSI name: {why}"))
        })
    }

    /// The default target IQN prefix for a driver name: `iqn.2024-01.<reversed driver name>`.
    pub fn prefix_for_driver(driver_name: &str) -> Result<Self> {
        let reversed: Vec<String> = driver_name
            .rsplit('.')
            .map(str::to_ascii_lowercase)
            .collect();
        Self::parse(&format!("iqn.2024-01.{}", reversed.join(".")))
    }

    /// The target IQN of `volume` under this prefix.
    pub fn target_for(&self, volume: &VolumeId) -> Self {
        Self(format!("{}:{}", self.0, volume.0))
    }
}

impl NodeId {
    /// Parses an untrusted node id: it must be the node's initiator IQN.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid_argument("node id is required"));
        }
        Iqn::parse(raw)
            .map(|iqn| Self(iqn.0))
            .map_err(|e| e.context("node id must be the node's initiator IQN"))
    }

    /// The node id of the node whose initiator name is `iqn`.
    pub fn from_initiator(iqn: &Iqn) -> Self {
        Self(iqn.0.clone())
    }

    /// The initiator IQN this node logs in with.
    pub fn initiator(&self) -> Iqn {
        Iqn(self.0.clone())
    }
}

/// Validates a CSI driver name: at most 63 characters, alphanumerics, `-`, `_`, `.`, beginning
/// and ending with an alphanumeric (spec.md, GetPluginInfo).
pub fn validate_driver_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "driver name {name:?} must be 1-63 characters of [a-zA-Z0-9-_.], beginning and ending with an alphanumeric"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_names_become_safe_distinct_lv_names() {
        let hostile = [
            "pvc-0b3c1e2a-77aa-4d0e-9d69-0c5d7ab1b5e9",
            "a;rm -rf /",
            "$(reboot)",
            "`id`",
            "../../etc/passwd",
            "--force",
            "'quoted'\"double\"",
            "émoji-🚀-名前",
            "A;RM -RF /",
            "",
        ];
        let mut seen = std::collections::HashSet::new();
        for name in hostile {
            let lv = LvName::for_volume(name);
            assert!(LvName::parse(lv.as_str()).is_ok(), "{name:?} -> {lv}");
            assert!(seen.insert(lv.clone()), "collision for {name:?}");
        }
        assert!(
            LvName::for_volume("pvc-0b3c1e2a-77aa-4d0e-9d69-0c5d7ab1b5e9")
                .as_str()
                .starts_with("csi-pvc-0b3c1e2a")
        );
    }

    #[test]
    fn max_length_unicode_name_fits() {
        let name = "名".repeat(42) + "ab"; // 128 bytes
        assert_eq!(name.len(), 128);
        let lv = LvName::for_volume(&name);
        assert!(lv.as_str().len() <= 61);
        assert!(LvName::parse(lv.as_str()).is_ok());
    }

    #[test]
    fn iqns_are_validated() {
        assert!(Iqn::parse("iqn.2024-01.dev.carve:node1").is_ok());
        assert!(Iqn::parse("iqn.1993-08.org.debian:01:5a3e8a1b2c").is_ok());
        assert_eq!(
            Iqn::parse("iqn.2024-01.Dev.carve:Node1").unwrap().as_str(),
            "iqn.2024-01.dev.carve:node1",
            "normalized to lower case (RFC 3722)"
        );
        for bad in [
            "",
            "iqn.24-01.x",
            "iqn.2024-01",
            "iqn.2024-13.dev.carve",
            "node1",
            "iqn.2024-01.x y",
            "iqn.2024-01.a;b",
        ] {
            assert!(Iqn::parse(bad).is_err(), "{bad:?}");
        }
        let prefix = Iqn::prefix_for_driver("lvm-iscsi.csi.carve.dev").unwrap();
        assert_eq!(prefix.as_str(), "iqn.2024-01.dev.carve.csi.lvm-iscsi");
        let volume = VolumeId::parse("csi-pvc-1-abc").unwrap();
        assert_eq!(
            prefix.target_for(&volume).as_str(),
            "iqn.2024-01.dev.carve.csi.lvm-iscsi:csi-pvc-1-abc"
        );
        assert!(Iqn::parse(prefix.target_for(&volume).as_str()).is_ok());
    }

    #[test]
    fn node_id_is_the_initiator_iqn() {
        let node = NodeId::parse("iqn.2024-01.dev.carve:node1").unwrap();
        assert_eq!(node.initiator().as_str(), "iqn.2024-01.dev.carve:node1");
        let err = NodeId::parse("worker-1").unwrap_err();
        assert!(err.message().contains("initiator IQN"), "{err}");
    }

    #[test]
    fn volume_ids_from_requests_are_checked() {
        for bad in ["", "../x", "csi-A", "vol1", "csi-a;b", "csi-x-"] {
            assert!(VolumeId::parse(bad).is_err(), "{bad:?}");
        }
        let v = VolumeId::parse("csi-pvc-1-0123456789abcdef01234567").unwrap();
        let serial = v.unit_serial();
        assert_eq!(serial.len(), 36);
        assert_eq!(serial, v.unit_serial(), "deterministic");
    }

    #[test]
    fn ids_carve_never_issued_are_unknown_not_invalid() {
        assert!(VolumeId::lookup("").is_err(), "missing field");
        for foreign in [
            "fake-vol-id-3c6105c0-f",
            "snap-s-1",
            "../x",
            "csi-A",
            "csi-x-",
            "名",
        ] {
            assert_eq!(VolumeId::lookup(foreign).unwrap(), None, "{foreign:?}");
        }
        assert_eq!(
            VolumeId::lookup("csi-pvc-1-0123")
                .unwrap()
                .unwrap()
                .as_str(),
            "csi-pvc-1-0123"
        );
    }

    #[test]
    fn driver_names_follow_the_spec() {
        assert!(validate_driver_name("lvm-iscsi.csi.carve.dev").is_ok());
        for bad in ["", "-x", "x-", "a b", "a/b", &"x".repeat(64)] {
            assert!(validate_driver_name(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_name_yields_a_valid_lv_name(name in "\\PC{0,64}") {
            let lv = LvName::for_volume(&name);
            prop_assert!(LvName::parse(lv.as_str()).is_ok());
            let target = format!("iqn.2024-01.dev.carve:{lv}");
            prop_assert!(Iqn::parse(&target).is_ok());
        }

        #[test]
        fn different_names_yield_different_lv_names(a in "\\PC{0,40}", b in "\\PC{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(LvName::for_volume(&a), LvName::for_volume(&b));
        }
    }
}
