//! Small builders for the request pieces every RPC repeats: volume capabilities, capacity
//! ranges, topologies and content sources.
//!
//! Invariant: pure functions of their inputs; a zero size means "unspecified" as in the spec.

use std::collections::HashMap;

use csi_proto::v1::{
    CapacityRange, Topology, TopologyRequirement, VolumeCapability, VolumeContentSource,
    volume_capability::{self, AccessMode, BlockVolume, MountVolume, access_mode::Mode},
    volume_content_source,
};

/// How a volume is accessed: as a raw block device or through a filesystem mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessType {
    /// A raw block device.
    Block,
    /// A mounted filesystem.
    Mount {
        /// Filesystem type (`ext4`, `xfs`); empty lets the plugin choose.
        fs_type: String,
        /// Extra mount flags (`noatime`, ...).
        mount_flags: Vec<String>,
        /// The group to own the mounted volume (`volume_mount_group`); empty for none.
        volume_mount_group: String,
    },
}

impl AccessType {
    /// A mount with the given filesystem type and no flags or group.
    pub fn mount(fs_type: &str) -> Self {
        AccessType::Mount {
            fs_type: fs_type.to_string(),
            mount_flags: Vec::new(),
            volume_mount_group: String::new(),
        }
    }
}

/// Builds a [`VolumeCapability`] from an access mode and an access type.
pub fn volume_capability(mode: Mode, access: &AccessType) -> VolumeCapability {
    let access_type = match access {
        AccessType::Block => volume_capability::AccessType::Block(BlockVolume {}),
        AccessType::Mount {
            fs_type,
            mount_flags,
            volume_mount_group,
        } => volume_capability::AccessType::Mount(MountVolume {
            fs_type: fs_type.clone(),
            mount_flags: mount_flags.clone(),
            volume_mount_group: volume_mount_group.clone(),
        }),
    };
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(access_type),
    }
}

/// A block-device capability with `mode`.
pub fn block_capability(mode: Mode) -> VolumeCapability {
    volume_capability(mode, &AccessType::Block)
}

/// A filesystem capability with `mode`, filesystem type, mount flags and mount group.
pub fn mount_capability(
    mode: Mode,
    fs_type: &str,
    mount_flags: &[&str],
    volume_mount_group: &str,
) -> VolumeCapability {
    volume_capability(
        mode,
        &AccessType::Mount {
            fs_type: fs_type.to_string(),
            mount_flags: mount_flags
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            volume_mount_group: volume_mount_group.to_string(),
        },
    )
}

/// A capacity range, or `None` when both bounds are zero (unspecified).
pub fn capacity_range(required_bytes: i64, limit_bytes: i64) -> Option<CapacityRange> {
    (required_bytes != 0 || limit_bytes != 0).then_some(CapacityRange {
        required_bytes,
        limit_bytes,
    })
}

/// A topology requirement, or `None` when both lists are empty.
pub fn topology_requirement(
    requisite: Vec<HashMap<String, String>>,
    preferred: Vec<HashMap<String, String>>,
) -> Option<TopologyRequirement> {
    let wrap = |segments: Vec<HashMap<String, String>>| -> Vec<Topology> {
        segments
            .into_iter()
            .map(|segments| Topology { segments })
            .collect()
    };
    (!requisite.is_empty() || !preferred.is_empty()).then(|| TopologyRequirement {
        requisite: wrap(requisite),
        preferred: wrap(preferred),
    })
}

/// A content source that restores snapshot `snapshot_id`.
pub fn from_snapshot(snapshot_id: &str) -> VolumeContentSource {
    VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(
            volume_content_source::SnapshotSource {
                snapshot_id: snapshot_id.to_string(),
            },
        )),
    }
}

/// A content source that clones volume `volume_id`.
pub fn from_volume(volume_id: &str) -> VolumeContentSource {
    VolumeContentSource {
        r#type: Some(volume_content_source::Type::Volume(
            volume_content_source::VolumeSource {
                volume_id: volume_id.to_string(),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_and_block_capabilities() {
        let cap = mount_capability(Mode::SingleNodeWriter, "xfs", &["noatime"], "1000");
        assert_eq!(cap.access_mode.unwrap().mode, Mode::SingleNodeWriter as i32);
        let Some(volume_capability::AccessType::Mount(mount)) = cap.access_type else {
            panic!("not mount")
        };
        assert_eq!(mount.fs_type, "xfs");
        assert_eq!(mount.mount_flags, vec!["noatime".to_string()]);
        assert_eq!(mount.volume_mount_group, "1000");

        let cap = block_capability(Mode::MultiNodeMultiWriter);
        assert_eq!(cap.access_mode.unwrap().mode, 5);
        assert!(matches!(
            cap.access_type,
            Some(volume_capability::AccessType::Block(_))
        ));
        assert_eq!(
            volume_capability(Mode::SingleNodeWriter, &AccessType::mount("ext4")),
            mount_capability(Mode::SingleNodeWriter, "ext4", &[], "")
        );
    }

    #[test]
    fn ranges_topologies_sources() {
        assert_eq!(capacity_range(0, 0), None);
        assert_eq!(
            capacity_range(5, 0),
            Some(CapacityRange {
                required_bytes: 5,
                limit_bytes: 0
            })
        );
        assert_eq!(topology_requirement(vec![], vec![]), None);
        let zone = HashMap::from([("zone".to_string(), "a".to_string())]);
        let req = topology_requirement(vec![zone.clone()], vec![]).unwrap();
        assert_eq!(req.requisite, vec![Topology { segments: zone }]);
        assert!(req.preferred.is_empty());
        assert!(
            matches!(from_snapshot("s").r#type, Some(volume_content_source::Type::Snapshot(s)) if s.snapshot_id == "s")
        );
        assert!(
            matches!(from_volume("v").r#type, Some(volume_content_source::Type::Volume(v)) if v.volume_id == "v")
        );
    }
}
