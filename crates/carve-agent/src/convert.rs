//! Agent messages ↔ the operations' domain requests and results, and nothing else: no check
//! here decides an answer (the operations do, as they do for the single-host controller).
//!
//! The operations take a few CSI value types (capability, capacity range, content source); the
//! agent's own messages map onto them one to one. An unset or unknown enum value maps to CSI's
//! unset/unknown, which the operations refuse with `InvalidArgument`.

use crate::proto;
use csi_controller::ops::{
    Ctx, list_volumes::VolumeStatus, snapshot::Snapshot, volume::Volume as OpsVolume,
};
use csi_proto::v1::{
    self as csi, VolumeContentSource,
    volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume, access_mode::Mode},
    volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource},
};

/// The CSI capability the operations parse, for an agent capability.
pub fn capability(cap: &proto::Capability) -> csi::VolumeCapability {
    use proto::capability::{AccessMode as M, AccessType as T};
    let access_type = match T::try_from(cap.access_type) {
        Ok(T::Block) => Some(AccessType::Block(BlockVolume {})),
        Ok(T::Mount) => Some(AccessType::Mount(MountVolume {
            fs_type: cap.fs_type.clone(),
            ..Default::default()
        })),
        Ok(T::Unspecified) | Err(_) => None,
    };
    let mode = match M::try_from(cap.access_mode) {
        Ok(M::SingleNodeWriter) => Mode::SingleNodeWriter,
        Ok(M::SingleNodeReaderOnly) => Mode::SingleNodeReaderOnly,
        Ok(M::SingleNodeSingleWriter) => Mode::SingleNodeSingleWriter,
        Ok(M::SingleNodeMultiWriter) => Mode::SingleNodeMultiWriter,
        Ok(M::Unspecified) | Err(_) => Mode::Unknown,
    };
    csi::VolumeCapability {
        access_type,
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

/// The CSI capacity range of an agent one.
pub fn capacity_range(range: &proto::CapacityRange) -> csi::CapacityRange {
    csi::CapacityRange {
        required_bytes: range.required_bytes,
        limit_bytes: range.limit_bytes,
    }
}

/// The CSI content source of an agent one; `None` for an empty volume (no source set).
pub fn content_source(source: Option<&proto::ContentSource>) -> Option<VolumeContentSource> {
    use proto::content_source::Source;
    let r#type = match source?.source.as_ref()? {
        Source::SnapshotId(id) => SourceType::Snapshot(SnapshotSource {
            snapshot_id: id.clone(),
        }),
        Source::VolumeId(id) => SourceType::Volume(VolumeSource {
            volume_id: id.clone(),
        }),
    };
    Some(VolumeContentSource {
        r#type: Some(r#type),
    })
}

/// The agent's content source of a volume's recorded CSI one.
fn recorded_source(source: Option<VolumeContentSource>) -> Option<proto::ContentSource> {
    use proto::content_source::Source;
    let source = match source?.r#type? {
        SourceType::Snapshot(s) => Source::SnapshotId(s.snapshot_id),
        SourceType::Volume(v) => Source::VolumeId(v.volume_id),
    };
    Some(proto::ContentSource {
        source: Some(source),
    })
}

/// The agent's volume message for `v` (volume_context as CSI's: the same function builds it).
pub fn volume(ctx: &Ctx, v: &OpsVolume) -> proto::Volume {
    proto::Volume {
        volume_id: v.id.to_string(),
        capacity_bytes: v.lv.size,
        volume_context: v.volume_context(ctx),
        content_source: recorded_source(v.content_source()),
    }
}

/// The agent's status message for `s`.
pub fn volume_status(ctx: &Ctx, s: &VolumeStatus) -> proto::VolumeStatus {
    proto::VolumeStatus {
        volume: Some(volume(ctx, &s.volume)),
        published_nodes: s.published_nodes.clone(),
        abnormal: s.abnormal.clone().unwrap_or_default(),
    }
}

/// The agent's snapshot message for `s`.
pub fn snapshot(s: &Snapshot) -> proto::Snapshot {
    proto::Snapshot {
        snapshot_id: s.id.to_string(),
        source_volume_id: s.record.source_volume.to_string(),
        size_bytes: s.lv.size,
        creation_time: Some(prost_types::Timestamp {
            seconds: s.record.created_seconds,
            nanos: s.record.created_nanos.cast_signed(),
        }),
        ready_to_use: s.ready(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::capability::{AccessMode as M, AccessType as T};

    #[test]
    fn capabilities_map_one_to_one_and_unknowns_stay_unknown() {
        let mount = capability(&proto::Capability {
            access_type: T::Mount as i32,
            fs_type: "xfs".into(),
            access_mode: M::SingleNodeReaderOnly as i32,
        });
        assert!(matches!(&mount.access_type, Some(AccessType::Mount(m)) if m.fs_type == "xfs"));
        assert_eq!(
            mount.access_mode.unwrap().mode,
            Mode::SingleNodeReaderOnly as i32
        );
        let unknown = capability(&proto::Capability {
            access_type: 99,
            fs_type: String::new(),
            access_mode: 99,
        });
        assert_eq!(unknown.access_type, None);
        assert_eq!(unknown.access_mode.unwrap().mode, Mode::Unknown as i32);
    }

    #[test]
    fn content_sources_round_trip() {
        use proto::content_source::Source;
        for source in [
            Source::SnapshotId("snap-s-1".into()),
            Source::VolumeId("csi-v-1".into()),
        ] {
            let agent = proto::ContentSource {
                source: Some(source),
            };
            assert_eq!(
                recorded_source(content_source(Some(&agent))),
                Some(agent.clone())
            );
        }
        assert_eq!(content_source(None), None);
        assert_eq!(content_source(Some(&proto::ContentSource::default())), None);
    }
}
