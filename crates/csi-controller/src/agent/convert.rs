//! carve.agent.v1 messages ↔ the operations' domain requests and results, both directions in
//! one place: the agent's service (carve-agent) turns requests into the operations' CSI value
//! types and their results into messages; [`super::AgentBackend`] does the reverse. No check
//! here decides an answer (the operations do); a round trip is the identity (tested below).
//!
//! An unset or unknown enum value maps to CSI's unset/unknown, which the operations refuse with
//! `InvalidArgument`.

use super::{RemoteSnapshot, RemoteVolume, RemoteVolumeStatus};
use crate::ops::{
    Ctx,
    list_volumes::VolumeStatus,
    snapshot::{Snapshot, create::CreateSnapshot, list::ListSnapshots},
    volume::Volume as OpsVolume,
};
use csi_proto::{
    agent::v1 as proto,
    v1::{
        self as csi, VolumeContentSource,
        volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume, access_mode::Mode},
        volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource},
    },
};
use proto::capability::{AccessMode as M, AccessType as T};

/// The CSI capability the operations parse, for an agent capability.
pub fn capability(cap: &proto::Capability) -> csi::VolumeCapability {
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

/// The agent capability of a CSI one (a mode Carve does not serve becomes unspecified: callers
/// check capabilities with [`crate::ops::capability::parse`] first, for the local answer).
pub fn to_capability(cap: &csi::VolumeCapability) -> proto::Capability {
    let (access_type, fs_type) = match &cap.access_type {
        Some(AccessType::Block(_)) => (T::Block, String::new()),
        Some(AccessType::Mount(m)) => (T::Mount, m.fs_type.clone()),
        None => (T::Unspecified, String::new()),
    };
    let mode = cap
        .access_mode
        .as_ref()
        .and_then(|m| Mode::try_from(m.mode).ok());
    let access_mode = match mode {
        Some(Mode::SingleNodeWriter) => M::SingleNodeWriter,
        Some(Mode::SingleNodeReaderOnly) => M::SingleNodeReaderOnly,
        Some(Mode::SingleNodeSingleWriter) => M::SingleNodeSingleWriter,
        Some(Mode::SingleNodeMultiWriter) => M::SingleNodeMultiWriter,
        _ => M::Unspecified,
    };
    proto::Capability {
        access_type: access_type as i32,
        fs_type,
        access_mode: access_mode as i32,
    }
}

/// The CSI capacity range of an agent one.
pub fn capacity_range(range: &proto::CapacityRange) -> csi::CapacityRange {
    csi::CapacityRange {
        required_bytes: range.required_bytes,
        limit_bytes: range.limit_bytes,
    }
}

/// The agent capacity range of a CSI one.
pub fn to_capacity_range(range: &csi::CapacityRange) -> proto::CapacityRange {
    proto::CapacityRange {
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

/// The agent content source of a CSI one; `None` when it names no source.
pub fn to_content_source(source: Option<&VolumeContentSource>) -> Option<proto::ContentSource> {
    use proto::content_source::Source;
    let source = match source?.r#type.as_ref()? {
        SourceType::Snapshot(s) => Source::SnapshotId(s.snapshot_id.clone()),
        SourceType::Volume(v) => Source::VolumeId(v.volume_id.clone()),
    };
    Some(proto::ContentSource {
        source: Some(source),
    })
}

/// The operations' CreateSnapshot of an agent request.
pub fn create_snapshot(req: &proto::CreateSnapshotRequest) -> CreateSnapshot<'_> {
    CreateSnapshot {
        name: &req.name,
        source_volume_id: &req.source_volume_id,
        parameters: &req.parameters,
    }
}

/// The agent request of the operations' CreateSnapshot.
pub fn to_create_snapshot(req: &CreateSnapshot<'_>) -> proto::CreateSnapshotRequest {
    proto::CreateSnapshotRequest {
        name: req.name.to_string(),
        source_volume_id: req.source_volume_id.to_string(),
        parameters: req.parameters.clone(),
    }
}

/// The operations' ListSnapshots of an agent request.
pub fn list_snapshots(req: &proto::ListSnapshotsRequest) -> ListSnapshots<'_> {
    ListSnapshots {
        max_entries: req.max_entries,
        starting_token: &req.starting_token,
        source_volume_id: &req.source_volume_id,
        snapshot_id: &req.snapshot_id,
    }
}

/// The agent request of the operations' ListSnapshots.
pub fn to_list_snapshots(req: &ListSnapshots<'_>) -> proto::ListSnapshotsRequest {
    proto::ListSnapshotsRequest {
        max_entries: req.max_entries,
        starting_token: req.starting_token.to_string(),
        source_volume_id: req.source_volume_id.to_string(),
        snapshot_id: req.snapshot_id.to_string(),
    }
}

/// The agent's volume message for `v` (volume_context as CSI's: the same function builds it).
pub fn volume(ctx: &Ctx, v: &OpsVolume) -> proto::Volume {
    proto::Volume {
        volume_id: v.id.to_string(),
        capacity_bytes: v.lv.size,
        volume_context: v.volume_context(ctx),
        content_source: to_content_source(v.content_source().as_ref()),
        thin: Some(v.thin()),
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

/// The volume an agent answered.
pub fn from_volume(v: proto::Volume) -> RemoteVolume {
    RemoteVolume {
        content_source: content_source(v.content_source.as_ref()),
        id: v.volume_id,
        capacity: v.capacity_bytes,
        volume_context: v.volume_context,
        thin: v.thin,
    }
}

/// The volume status an agent answered.
pub fn from_volume_status(s: proto::VolumeStatus) -> RemoteVolumeStatus {
    RemoteVolumeStatus {
        volume: from_volume(s.volume.unwrap_or_default()),
        published_nodes: s.published_nodes,
        abnormal: Some(s.abnormal).filter(|a| !a.is_empty()),
    }
}

/// The snapshot an agent answered.
pub fn from_snapshot(s: proto::Snapshot) -> RemoteSnapshot {
    RemoteSnapshot {
        id: s.snapshot_id,
        source_volume_id: s.source_volume_id,
        size: s.size_bytes,
        creation_time: s.creation_time.unwrap_or_default(),
        ready: s.ready_to_use,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_round_trip_and_unknowns_stay_unknown() {
        for access_type in [T::Block, T::Mount, T::Unspecified] {
            for access_mode in [
                M::SingleNodeWriter,
                M::SingleNodeReaderOnly,
                M::SingleNodeSingleWriter,
                M::SingleNodeMultiWriter,
                M::Unspecified,
            ] {
                let agent = proto::Capability {
                    access_type: access_type as i32,
                    fs_type: if access_type == T::Mount { "xfs" } else { "" }.into(),
                    access_mode: access_mode as i32,
                };
                assert_eq!(to_capability(&capability(&agent)), agent);
            }
        }
        let mount = capability(&proto::Capability {
            access_type: T::Mount as i32,
            fs_type: "xfs".into(),
            access_mode: M::SingleNodeReaderOnly as i32,
        });
        assert!(matches!(&mount.access_type, Some(AccessType::Mount(m)) if m.fs_type == "xfs"));
        let unknown = capability(&proto::Capability {
            access_type: 99,
            fs_type: String::new(),
            access_mode: 99,
        });
        assert_eq!(unknown.access_type, None);
        assert_eq!(unknown.access_mode.unwrap().mode, Mode::Unknown as i32);
        let multi = crate::ops::capability::mount("ext4", Mode::MultiNodeMultiWriter);
        assert_eq!(to_capability(&multi).access_mode, M::Unspecified as i32);
    }

    #[test]
    fn snapshot_requests_round_trip() {
        let create = proto::CreateSnapshotRequest {
            name: "snap-1".into(),
            source_volume_id: "csi-v-1".into(),
            parameters: [("k".to_string(), "v".to_string())].into(),
        };
        assert_eq!(to_create_snapshot(&create_snapshot(&create)), create);
        let list = proto::ListSnapshotsRequest {
            max_entries: 3,
            starting_token: "2".into(),
            source_volume_id: "csi-v-1".into(),
            snapshot_id: "snap-s-1".into(),
        };
        assert_eq!(to_list_snapshots(&list_snapshots(&list)), list);
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
            let csi = content_source(Some(&agent));
            assert_eq!(to_content_source(csi.as_ref()), Some(agent));
        }
        assert_eq!(content_source(None), None);
        assert_eq!(content_source(Some(&proto::ContentSource::default())), None);
        assert_eq!(
            to_content_source(Some(&VolumeContentSource::default())),
            None
        );
    }
}
