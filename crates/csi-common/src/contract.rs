//! The contract between `csi-controller` and `csi-node`: context keys, CHAP secret keys and
//! the iSCSI coordinates of a volume.
//!
//! Invariants: contexts never carry a secret; [`Chap`] never prints its passwords; the node id
//! is the node's initiator IQN ([`crate::ids::NodeId`]), so ControllerPublish knows which
//! initiator to allow without the Kubernetes API.

use crate::{
    error::{Error, Result},
    ids::Iqn,
};
use std::{collections::HashMap, fmt};

/// volume_context / publish_context key: the target IQN of the volume.
pub const TARGET_IQN: &str = "targetIqn";
/// volume_context / publish_context key: comma-separated `ip:port` portals.
pub const PORTALS: &str = "portals";
/// volume_context / publish_context key: the LUN number (always `0` today).
pub const LUN: &str = "lun";
/// volume_context / publish_context key: the unit serial (VPD 0x80) the disk must report.
pub const SERIAL: &str = "serial";
/// volume_context key: `""` for a new empty volume, `snapshot:<id>` or `volume:<id>` otherwise.
/// A volume with content is never formatted by the node, whatever blkid says.
pub const CONTENT_SOURCE: &str = "contentSource";
/// volume_context key (only when known): the namespace of the PersistentVolumeClaim the volume
/// was provisioned for, from the provisioner's `--extra-create-metadata`. Informational: the
/// node never reads it.
pub const PVC_NAMESPACE: &str = "pvcNamespace";
/// volume_context key (only when known): the name of that PersistentVolumeClaim.
pub const PVC_NAME: &str = "pvcName";
/// volume_context key (only when known): the name of the PersistentVolume made for it.
pub const PV_NAME: &str = "pvName";

/// The default attach limit of both plugins: the node's `--max-volumes` (NodeGetInfo's
/// `max_volumes_per_node`, which kubelet publishes as CSINode allocatable for the scheduler) and
/// the controller's `--max-volumes-per-node` (ControllerPublishVolume's RESOURCE_EXHAUSTED). Every
/// volume is one iSCSI session and one SCSI disk on the node.
pub const DEFAULT_MAX_VOLUMES_PER_NODE: u32 = 64;
/// publish_context key: `"true"` when the LUN is write-protected for this node (a readonly
/// ControllerPublish): the node then stages read-only, whatever the capability's access mode.
pub const READONLY: &str = "readonly";
/// publish_context key: `"true"` only when the controller can prove the volume has never held
/// data (a thin LV with no mapped block, or a linear LV never published before). The node
/// formats only a volume the controller vouches for; absent or any other value means "may hold
/// data".
pub const BLANK: &str = "blank";

/// The access mode `cap` names, the same for both plugins; `None` when it names none, one this
/// CSI version does not know, or UNKNOWN (each plugin words its own refusal).
pub fn access_mode(
    cap: &csi_proto::v1::VolumeCapability,
) -> Option<csi_proto::v1::volume_capability::access_mode::Mode> {
    use csi_proto::v1::volume_capability::access_mode::Mode;
    cap.access_mode
        .as_ref()
        .and_then(|m| Mode::try_from(m.mode).ok())
        .filter(|m| *m != Mode::Unknown)
}

/// Whether `publish_context` says `key` is `"true"` (absent or anything else: false).
pub fn context_flag(publish: &HashMap<String, String>, key: &str) -> bool {
    publish.get(key).is_some_and(|v| v == "true")
}

/// Secret key: CHAP user name the initiator presents.
pub const CHAP_USERNAME: &str = "chapUsername";
/// Secret key: CHAP password the initiator presents.
pub const CHAP_PASSWORD: &str = "chapPassword";
/// Secret key: mutual CHAP user name the target presents.
pub const CHAP_MUTUAL_USERNAME: &str = "chapMutualUsername";
/// Secret key: mutual CHAP password the target presents.
pub const CHAP_MUTUAL_PASSWORD: &str = "chapMutualPassword";

/// Where and how to reach a volume over iSCSI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiTarget {
    /// The target IQN.
    pub iqn: Iqn,
    /// `ip:port` portals, at least one.
    pub portals: Vec<String>,
    /// The LUN.
    pub lun: u32,
    /// The unit serial the disk must report.
    pub serial: String,
}

impl IscsiTarget {
    /// The context map for this target (no secrets).
    pub fn to_context(&self) -> HashMap<String, String> {
        HashMap::from([
            (TARGET_IQN.to_string(), self.iqn.to_string()),
            (PORTALS.to_string(), self.portals.join(",")),
            (LUN.to_string(), self.lun.to_string()),
            (SERIAL.to_string(), self.serial.clone()),
        ])
    }

    /// Reads a target from publish_context, falling back to volume_context key by key.
    pub fn from_contexts(
        publish: &HashMap<String, String>,
        volume: &HashMap<String, String>,
    ) -> Result<Self> {
        let get = |key: &str| {
            publish
                .get(key)
                .or_else(|| volume.get(key))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::invalid_argument(format!("publish_context/volume_context lacks {key:?}"))
                })
        };
        let iqn = Iqn::parse(get(TARGET_IQN)?)?;
        let portals: Vec<String> = get(PORTALS)?
            .split(',')
            .map(|p| p.trim().to_string())
            .collect();
        for portal in &portals {
            validate_portal(portal)?;
        }
        let lun = get(LUN)?
            .parse::<u32>()
            .map_err(|_| Error::invalid_argument("lun must be a non-negative integer"))?;
        let serial = get(SERIAL)?.clone();
        if !serial.chars().all(|c| c.is_ascii_hexdigit() || c == '-') || serial.len() > 64 {
            return Err(Error::invalid_argument(
                "serial must be hex digits and dashes",
            ));
        }
        Ok(Self {
            iqn,
            portals,
            lun,
            serial,
        })
    }
}

/// Checks an `ip:port` portal (IPv4, or `[v6]:port`); host names are refused so that a portal
/// can never be turned into a lookup or an option.
pub fn validate_portal(portal: &str) -> Result<std::net::SocketAddr> {
    let addr: std::net::SocketAddr = portal
        .parse()
        .map_err(|_| Error::invalid_argument(format!("portal {portal:?} must be ip:port")))?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(Error::invalid_argument(format!(
            "portal {portal:?} must name a real address and port"
        )));
    }
    Ok(addr)
}

/// CHAP credentials from a `secrets` map. `Debug` shows user names only.
#[derive(Clone, PartialEq, Eq)]
pub struct Chap {
    /// Initiator user name.
    pub username: String,
    /// Initiator password.
    pub password: String,
    /// Mutual (target) credentials, if any.
    pub mutual: Option<(String, String)>,
}

impl fmt::Debug for Chap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chap")
            .field("username", &self.username)
            .field("password", &crate::command::REDACTED)
            .field("mutual_username", &self.mutual.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl Chap {
    /// Reads CHAP credentials from a secrets map: none if no CHAP key is present; an error if
    /// they are incomplete or unusable. Error messages name keys, never values.
    pub fn from_secrets(secrets: &HashMap<String, String>) -> Result<Option<Self>> {
        let keys = [
            CHAP_USERNAME,
            CHAP_PASSWORD,
            CHAP_MUTUAL_USERNAME,
            CHAP_MUTUAL_PASSWORD,
        ];
        if !keys.iter().any(|k| secrets.contains_key(*k)) {
            return Ok(None);
        }
        let get = |k: &str| secrets.get(k).filter(|v| !v.is_empty()).cloned();
        let (Some(username), Some(password)) = (get(CHAP_USERNAME), get(CHAP_PASSWORD)) else {
            return Err(Error::invalid_argument(format!(
                "CHAP needs both {CHAP_USERNAME} and {CHAP_PASSWORD}"
            )));
        };
        let mutual = match (get(CHAP_MUTUAL_USERNAME), get(CHAP_MUTUAL_PASSWORD)) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => {
                return Err(Error::invalid_argument(format!(
                    "mutual CHAP needs both {CHAP_MUTUAL_USERNAME} and {CHAP_MUTUAL_PASSWORD}"
                )));
            }
        };
        let chap = Self {
            username,
            password,
            mutual,
        };
        chap.validate()?;
        Ok(Some(chap))
    }

    fn validate(&self) -> Result<()> {
        let printable = |s: &str| s.chars().all(|c| c.is_ascii_graphic());
        let mut all = vec![
            (CHAP_USERNAME, &self.username),
            (CHAP_PASSWORD, &self.password),
        ];
        if let Some((u, p)) = &self.mutual {
            all.push((CHAP_MUTUAL_USERNAME, u));
            all.push((CHAP_MUTUAL_PASSWORD, p));
        }
        for (key, value) in all {
            if !printable(value) || value.len() > 255 {
                return Err(Error::invalid_argument(format!(
                    "{key} must be 1-255 printable ASCII characters"
                )));
            }
        }
        // LIO and open-iscsi accept 12-16 byte secrets at least; RFC 3720 wants >= 96 bits.
        for (key, secret) in [
            (CHAP_PASSWORD, Some(&self.password)),
            (CHAP_MUTUAL_PASSWORD, self.mutual.as_ref().map(|m| &m.1)),
        ] {
            if secret.is_some_and(|s| s.len() < 12) {
                return Err(Error::invalid_argument(format!(
                    "{key} must be at least 12 characters"
                )));
            }
        }
        if self
            .mutual
            .as_ref()
            .is_some_and(|(_, p)| *p == self.password)
        {
            return Err(Error::invalid_argument(
                "mutual CHAP password must differ from the CHAP password",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::map;

    #[test]
    fn target_round_trips_through_context() {
        let target = IscsiTarget {
            iqn: Iqn::parse("iqn.2024-01.dev.carve.csi.lvm-iscsi:csi-a-0123").unwrap(),
            portals: vec!["10.0.0.5:3260".into(), "10.0.1.5:3260".into()],
            lun: 0,
            serial: "0123abcd-0000-4000-8000-000000000001".into(),
        };
        let ctx = target.to_context();
        assert_eq!(
            IscsiTarget::from_contexts(&ctx, &HashMap::new()).unwrap(),
            target
        );
        assert_eq!(
            IscsiTarget::from_contexts(&HashMap::new(), &ctx).unwrap(),
            target
        );
    }

    #[test]
    fn hostile_contexts_are_refused() {
        let good = IscsiTarget {
            iqn: Iqn::parse("iqn.2024-01.dev.carve:x").unwrap(),
            portals: vec!["127.0.0.1:3260".into()],
            lun: 0,
            serial: "ab-12".into(),
        }
        .to_context();
        for (key, value) in [
            (PORTALS, "--login"),
            (PORTALS, "host.example:3260"),
            (PORTALS, "0.0.0.0:3260"),
            (TARGET_IQN, "iqn.2024-01.x;reboot"),
            (LUN, "-1"),
            (SERIAL, "$(id)"),
        ] {
            let mut ctx = good.clone();
            ctx.insert(key.into(), value.into());
            assert!(
                IscsiTarget::from_contexts(&ctx, &HashMap::new()).is_err(),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn chap_from_secrets() {
        assert_eq!(Chap::from_secrets(&HashMap::new()).unwrap(), None);
        let chap = Chap::from_secrets(&map(&[
            (CHAP_USERNAME, "u"),
            (CHAP_PASSWORD, "a-long-secret-1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(chap.username, "u");
        assert!(!format!("{chap:?}").contains("a-long-secret-1"));
        let err = Chap::from_secrets(&map(&[(CHAP_USERNAME, "u")])).unwrap_err();
        assert!(err.message().contains(CHAP_PASSWORD));
        let short = Chap::from_secrets(&map(&[(CHAP_USERNAME, "u"), (CHAP_PASSWORD, "short")]))
            .unwrap_err();
        assert!(!short.message().contains("short\""), "value never echoed");
        let half_mutual = map(&[
            (CHAP_USERNAME, "u"),
            (CHAP_PASSWORD, "a-long-secret-1"),
            (CHAP_MUTUAL_USERNAME, "t"),
        ]);
        assert!(Chap::from_secrets(&half_mutual).is_err());
    }
}
