//! The snapshot record kept in the tags of a snapshot LV (`snap-…`): the CSI name, the source
//! volume and the creation time, so every snapshot RPC answers from LVM alone, also after the
//! source volume is gone.
//!
//! Invariants: the same marker as volumes ([`MARKER`]; an LV without it is never touched); the
//! CSI name is escaped and chunked exactly like a volume's; the source is a Carve volume id
//! (`[a-z0-9-]`, valid as a tag as it is); the creation time is taken just before `lvcreate` and
//! never changes afterwards; never a secret in a tag.

use super::{MARKER, NAME, chunked, unchunked};
use csi_common::{Error, Result, ids::VolumeId};

/// Tag prefix: the id of the volume the snapshot was taken of.
pub const SOURCE_VOLUME: &str = "carve.snapof=";
/// Tag prefix: when the snapshot was cut, `<unix seconds>.<nanoseconds, 9 digits>`.
pub const CREATED: &str = "carve.created=";

/// What Carve records about a snapshot on its LV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The CSI snapshot name (untrusted Unicode).
    pub name: String,
    /// The volume the snapshot was taken of.
    pub source_volume: VolumeId,
    /// Creation time: seconds since the Unix epoch.
    pub created_seconds: i64,
    /// Creation time: nanoseconds within the second.
    pub created_nanos: u32,
}

impl SnapshotRecord {
    /// The tags to create the snapshot LV with.
    pub fn creation_tags(&self) -> Vec<String> {
        let mut tags = vec![
            MARKER.to_string(),
            format!("{SOURCE_VOLUME}{}", self.source_volume),
            format!(
                "{CREATED}{}.{:09}",
                self.created_seconds, self.created_nanos
            ),
        ];
        tags.extend(chunked(NAME, &self.name));
        tags
    }

    /// The record in `tags`; `None` when the LV is not Carve's or not a snapshot record.
    pub fn from_tags<S: AsRef<str>>(tags: &[S]) -> Result<Option<Self>> {
        if !tags.iter().any(|t| t.as_ref() == MARKER) {
            return Ok(None);
        }
        let mut source = None;
        let mut created = None;
        for tag in tags.iter().map(AsRef::as_ref) {
            if let Some(v) = tag.strip_prefix(SOURCE_VOLUME) {
                source = Some(VolumeId::parse(v).map_err(|_| {
                    Error::internal(format!("malformed tag {tag:?}: not a volume id"))
                })?);
            } else if let Some(v) = tag.strip_prefix(CREATED) {
                created = Some(parse_time(v).ok_or_else(|| {
                    Error::internal(format!("malformed tag {tag:?}: not a timestamp"))
                })?);
            }
        }
        let Some(source_volume) = source else {
            return Ok(None);
        };
        let (created_seconds, created_nanos) =
            created.ok_or_else(|| Error::internal(format!("snapshot tags lack {CREATED}")))?;
        Ok(Some(Self {
            name: unchunked(NAME, tags)?,
            source_volume,
            created_seconds,
            created_nanos,
        }))
    }
}

fn parse_time(value: &str) -> Option<(i64, u32)> {
    let (secs, nanos) = value.split_once('.')?;
    let nanos: u32 = nanos
        .parse()
        .ok()
        .filter(|n| *n < 1_000_000_000 && nanos.len() == 9)?;
    Some((secs.parse().ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::tags::is_valid_tag;

    fn record(name: &str) -> SnapshotRecord {
        SnapshotRecord {
            name: name.into(),
            source_volume: VolumeId::parse("csi-src-0123").unwrap(),
            created_seconds: 1_732_190_000,
            created_nanos: 123_456_789,
        }
    }

    #[test]
    fn hostile_names_round_trip_through_valid_tags() {
        for name in [
            "snap-1",
            "a;rm -rf /",
            "--force",
            "名前 🚀",
            &"x".repeat(128),
        ] {
            let tags = record(name).creation_tags();
            assert!(tags.iter().all(|t| is_valid_tag(t)), "{tags:?}");
            assert_eq!(
                SnapshotRecord::from_tags(&tags).unwrap().unwrap(),
                record(name)
            );
        }
        assert!(
            record("s")
                .creation_tags()
                .contains(&"carve.created=1732190000.123456789".to_string())
        );
    }

    #[test]
    fn volumes_and_foreign_lvs_are_not_snapshots() {
        let volume = crate::lvm::tags::VolumeRecord {
            name: "v".into(),
            ..Default::default()
        };
        assert_eq!(
            SnapshotRecord::from_tags(&volume.creation_tags()).unwrap(),
            None
        );
        let mut foreign = record("s").creation_tags();
        foreign.retain(|t| t != MARKER);
        assert_eq!(SnapshotRecord::from_tags(&foreign).unwrap(), None);
    }

    #[test]
    fn tampered_tags_are_reported() {
        for bad in [
            "carve.snapof=../x",
            "carve.created=12",
            "carve.created=12.5",
            "carve.created=x.000000000",
        ] {
            let mut tags = record("s").creation_tags();
            let prefix = &bad[..=bad.find('=').unwrap()];
            tags.retain(|t| !t.starts_with(prefix));
            tags.push(bad.to_string());
            assert!(SnapshotRecord::from_tags(&tags).is_err(), "{bad}");
        }
    }
}
