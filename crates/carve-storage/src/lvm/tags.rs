//! The volume record kept in LV tags: what the controller needs to answer every RPC after a
//! restart or a storage-host reboot, with LVM as the only store.
//!
//! Invariants: every tag is made only of characters LVM accepts (`[A-Za-z0-9_+.-/=!:#&]`);
//! untrusted text (the CSI name, the capability summary, the content source) is escaped as
//! `#XX` per byte outside `[A-Za-z0-9_.-]` and split into numbered chunks of at most
//! [`CHUNK`] characters, so decoding is exact for any Unicode; never a secret in a tag (tags are
//! world-readable through `lvs`). An LV without [`MARKER`] is not Carve's and is never touched.

use csi_common::{Error, Result, ids::NodeId};
use std::fmt::Write as _;

pub mod claim;
pub mod snapshot;

pub use claim::ClaimRef;

/// Present on every LV Carve created.
pub const MARKER: &str = "carve.v=1";
const NAME: &str = "carve.name.";
const CAPS: &str = "carve.caps.";
const SOURCE: &str = "carve.source.";
const REQUIRED: &str = "carve.required=";
/// Set on a linear LV before its first ControllerPublish and never removed: from then on the
/// volume may hold data, and the node is never told it is blank. (A thin LV needs no marker:
/// its mapped-data count says whether anything was ever written.)
pub const USED: &str = "carve.used";
/// Prefix of the tags recording publications: `carve.pub=<rw|ro>[.chap]:<initiator iqn>`.
pub const PUBLISHED: &str = "carve.pub=";
/// Longest encoded chunk per tag (LVM's limit on a tag is larger; this keeps tags readable).
pub const CHUNK: usize = 120;

/// One node the volume is published to, as recorded in the tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The node (its initiator IQN).
    pub node: NodeId,
    /// Published read-only (LUN write-protected for that node).
    pub readonly: bool,
    /// Published with CHAP credentials (which are never in a tag): after a reboot without
    /// saved credentials, the ACL waits for the CO to publish again with the secrets.
    pub chap: bool,
}

impl Publication {
    /// The tag recording this publication.
    pub fn tag(&self) -> String {
        let mode = if self.readonly { "ro" } else { "rw" };
        let chap = if self.chap { ".chap" } else { "" };
        format!("{PUBLISHED}{mode}{chap}:{}", self.node)
    }

    fn parse(value: &str) -> Result<Self> {
        let (mode, node) = value
            .split_once(':')
            .ok_or_else(|| Error::internal(format!("malformed publication tag {value:?}")))?;
        let (mode, chap) = match mode.strip_suffix(".chap") {
            Some(mode) => (mode, true),
            None => (mode, false),
        };
        let readonly = match mode {
            "ro" => true,
            "rw" => false,
            _ => {
                return Err(Error::internal(format!(
                    "malformed publication tag {value:?}"
                )));
            }
        };
        Ok(Self {
            node: NodeId::parse(node)?,
            readonly,
            chap,
        })
    }
}

/// The tag recording a volume's requested capacity (`required_bytes`).
pub fn required_tag(bytes: u64) -> String {
    format!("{REQUIRED}{bytes}")
}

/// What Carve records about a volume on its LV.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeRecord {
    /// The CSI volume name (untrusted Unicode, up to 128 bytes).
    pub name: String,
    /// The requested capacity in bytes (`required_bytes`, before rounding).
    pub required_bytes: u64,
    /// A summary of the requested capabilities (see `ops::capability::summary`).
    pub capabilities: String,
    /// `""` for a new empty volume, `snapshot:<id>` or `volume:<id>` otherwise.
    pub content_source: String,
    /// Nodes the volume is published to.
    pub published: Vec<Publication>,
    /// Whether [`USED`] is set: the volume has been published at least once.
    pub used: bool,
    /// The Kubernetes claim the volume was provisioned for (see [`claim`]).
    pub claim: ClaimRef,
}

impl VolumeRecord {
    /// The tags to create the LV with (publications are added later, one tag each).
    pub fn creation_tags(&self) -> Vec<String> {
        let mut tags = vec![
            MARKER.to_string(),
            format!("{REQUIRED}{}", self.required_bytes),
        ];
        tags.extend(chunked(NAME, &self.name));
        tags.extend(chunked(CAPS, &self.capabilities));
        tags.extend(chunked(SOURCE, &self.content_source));
        tags.extend(self.claim.tags());
        tags.extend(self.published.iter().map(Publication::tag));
        if self.used {
            tags.push(USED.to_string());
        }
        tags
    }

    /// The record in `tags`; `None` when the LV is not Carve's (no [`MARKER`]).
    pub fn from_tags<S: AsRef<str>>(tags: &[S]) -> Result<Option<Self>> {
        if !tags.iter().any(|t| t.as_ref() == MARKER) {
            return Ok(None);
        }
        let mut record = Self::default();
        let mut required = None;
        for tag in tags.iter().map(AsRef::as_ref) {
            if let Some(v) = tag.strip_prefix(REQUIRED) {
                required = Some(v.parse::<u64>().map_err(|_| {
                    Error::internal(format!("malformed tag {tag:?}: not a byte count"))
                })?);
            } else if tag == USED {
                record.used = true;
            } else if let Some(v) = tag.strip_prefix(PUBLISHED) {
                record.published.push(Publication::parse(v)?);
            }
        }
        record.required_bytes = required.unwrap_or(0);
        record.name = unchunked(NAME, tags)?;
        record.capabilities = unchunked(CAPS, tags)?;
        record.content_source = unchunked(SOURCE, tags)?;
        record.claim = ClaimRef::from_tags(tags)?;
        record.published.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(Some(record))
    }
}

/// `prefix<i>=<chunk>` tags for `value` (none for an empty value).
fn chunked(prefix: &str, value: &str) -> Vec<String> {
    let encoded = encode(value);
    let mut out = Vec::new();
    let mut rest = encoded.as_str();
    while !rest.is_empty() {
        // Never split an escape: back off to before a '#' within the last two characters.
        let mut cut = rest.len().min(CHUNK);
        if let Some(hash) = rest[..cut]
            .rfind('#')
            .filter(|&h| cut < rest.len() && h + 3 > cut)
        {
            cut = hash;
        }
        out.push(format!("{prefix}{}={}", out.len(), &rest[..cut]));
        rest = &rest[cut..];
    }
    out
}

fn unchunked<S: AsRef<str>>(prefix: &str, tags: &[S]) -> Result<String> {
    let mut parts: Vec<(usize, &str)> = Vec::new();
    for tag in tags.iter().map(AsRef::as_ref) {
        if let Some(rest) = tag.strip_prefix(prefix) {
            let (index, chunk) = rest
                .split_once('=')
                .and_then(|(i, c)| Some((i.parse::<usize>().ok()?, c)))
                .ok_or_else(|| Error::internal(format!("malformed tag {tag:?}")))?;
            parts.push((index, chunk));
        }
    }
    parts.sort_unstable();
    if parts.iter().enumerate().any(|(i, (index, _))| i != *index) {
        return Err(Error::internal(format!("tags {prefix}* have a gap")));
    }
    decode(&parts.iter().map(|(_, c)| *c).collect::<String>())
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'
}

/// Escapes every byte outside `[A-Za-z0-9_.-]` as `#XX`.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if is_plain(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "#{b:02X}");
        }
    }
    out
}

/// Reverses [`encode`]; malformed input is an internal error (someone edited the tags).
pub fn decode(encoded: &str) -> Result<String> {
    let bad = || Error::internal(format!("malformed encoded tag value {encoded:?}"));
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'#' {
            let hex = encoded.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else if is_plain(bytes[i]) {
            out.push(bytes[i]);
            i += 1;
        } else {
            return Err(bad());
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Whether LVM accepts `tag` (its documented character set).
pub fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+.-/=!:#&".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(name: &str) -> VolumeRecord {
        VolumeRecord {
            name: name.to_string(),
            required_bytes: 1 << 30,
            capabilities: "mount:xfs:single-node-writer".into(),
            content_source: String::new(),
            published: vec![Publication {
                node: NodeId::parse("iqn.2024-01.dev.carve:node1").unwrap(),
                readonly: true,
                chap: true,
            }],
            used: name.len().is_multiple_of(2),
            claim: ClaimRef {
                pvc_namespace: "ns".into(),
                pvc_name: name.to_string(),
                pv_name: String::new(),
            },
        }
    }

    #[test]
    fn hostile_names_round_trip_through_valid_tags() {
        let long = "名".repeat(42) + "ab";
        for name in [
            "pvc-1",
            "a;rm -rf /",
            "$(reboot)",
            "../../etc",
            "--force",
            "'q'\"d\"",
            "a,b c#d",
            long.as_str(),
        ] {
            let tags = record(name).creation_tags();
            for tag in &tags {
                assert!(is_valid_tag(tag), "{tag:?} from {name:?}");
                assert!(tag.len() <= CHUNK + 20, "{tag:?}");
            }
            let back = VolumeRecord::from_tags(&tags).unwrap().unwrap();
            assert_eq!(back, record(name));
        }
    }

    #[test]
    fn lv_without_marker_is_not_ours() {
        let tags = ["carve.name.0=x", "carve.required=5"];
        assert_eq!(VolumeRecord::from_tags(&tags).unwrap(), None);
    }

    #[test]
    fn tampered_tags_are_reported() {
        for bad in [
            "carve.name.0=#G1",
            "carve.name.1=x",
            "carve.required=-1",
            "carve.pub=rx:iqn.2024-01.a.b",
        ] {
            let tags = [MARKER, bad];
            assert!(VolumeRecord::from_tags(&tags).is_err(), "{bad}");
        }
    }

    #[test]
    fn publication_tags_use_the_initiator_iqn() {
        let p = Publication {
            node: NodeId::parse("iqn.2024-01.dev.carve:node2").unwrap(),
            readonly: false,
            chap: false,
        };
        assert_eq!(p.tag(), "carve.pub=rw:iqn.2024-01.dev.carve:node2");
        assert!(is_valid_tag(&p.tag()));
        let ro_chap = Publication {
            readonly: true,
            chap: true,
            ..p
        };
        assert_eq!(
            ro_chap.tag(),
            "carve.pub=ro.chap:iqn.2024-01.dev.carve:node2"
        );
        let parsed = VolumeRecord::from_tags(&[MARKER, ro_chap.tag().as_str()])
            .unwrap()
            .unwrap();
        assert_eq!(parsed.published, [ro_chap]);
    }

    proptest! {
        #[test]
        fn any_name_round_trips(name in "\\PC{0,128}") {
            let mut r = record(&name);
            r.content_source = format!("snapshot:{name}");
            let tags = r.creation_tags();
            prop_assert!(tags.iter().all(|t| is_valid_tag(t)));
            prop_assert_eq!(VolumeRecord::from_tags(&tags).unwrap().unwrap(), r);
        }

        #[test]
        fn different_names_give_different_tags(a in "\\PC{0,40}", b in "\\PC{0,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(chunked(NAME, &a), chunked(NAME, &b));
        }
    }
}
