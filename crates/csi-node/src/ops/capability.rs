//! Reading a CSI `VolumeCapability` into the node's terms.
//!
//! Invariants: an access mode is required; a mount volume gets a supported filesystem type
//! (empty means the default, ext4); a mount volume is never shared by several writers across
//! nodes (ext4/xfs are not cluster filesystems), a block volume may be.

use crate::{filesystem::mkfs::SUPPORTED, records::Access};
use csi_common::{Error, Result};
use csi_proto::v1::{
    VolumeCapability,
    volume_capability::{AccessType, access_mode::Mode},
};

/// The default filesystem.
pub const DEFAULT_FS: &str = "ext4";

/// A parsed capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Block or mount with its parameters.
    pub access: Access,
    /// The access mode.
    pub mode: Mode,
    /// volume_mount_group, if given.
    pub mount_group: Option<String>,
}

impl Capability {
    /// Whether the mode allows only reads.
    pub fn read_only_mode(&self) -> bool {
        matches!(
            self.mode,
            Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly
        )
    }
}

/// Parses and checks a capability.
pub fn parse(cap: Option<&VolumeCapability>) -> Result<Capability> {
    let cap = cap.ok_or_else(|| Error::invalid_argument("volume_capability is required"))?;
    let mode = csi_common::contract::access_mode(cap)
        .ok_or_else(|| Error::invalid_argument("volume_capability.access_mode is required"))?;
    let (access, mount_group) = match &cap.access_type {
        Some(AccessType::Block(_)) => (Access::Block, None),
        Some(AccessType::Mount(m)) => {
            let fs_type = if m.fs_type.is_empty() {
                DEFAULT_FS.to_string()
            } else {
                m.fs_type.to_lowercase()
            };
            if !SUPPORTED.contains(&fs_type.as_str()) {
                return Err(Error::invalid_argument(format!(
                    "fsType {:?} is not supported (supported: {})",
                    m.fs_type,
                    SUPPORTED.join(", ")
                )));
            }
            if matches!(
                mode,
                Mode::MultiNodeMultiWriter | Mode::MultiNodeSingleWriter
            ) {
                return Err(Error::invalid_argument(format!(
                    "access mode {} is not supported for {fs_type} mount volumes (not a cluster filesystem)",
                    mode.as_str_name()
                )));
            }
            crate::mount::parse_flags(&m.mount_flags)?;
            let group = (!m.volume_mount_group.is_empty()).then(|| m.volume_mount_group.clone());
            (
                Access::Mount {
                    fs_type,
                    flags: m.mount_flags.clone(),
                },
                group,
            )
        }
        None => {
            return Err(Error::invalid_argument(
                "volume_capability needs block or mount",
            ));
        }
    };
    Ok(Capability {
        access,
        mode,
        mount_group,
    })
}

#[cfg(test)]
pub fn mount_cap(fs_type: &str, mode: Mode) -> VolumeCapability {
    use csi_proto::v1::volume_capability::{AccessMode, MountVolume};
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs_type.into(),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
pub fn block_cap(mode: Mode) -> VolumeCapability {
    use csi_proto::v1::volume_capability::{AccessMode, BlockVolume};
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Block(BlockVolume {})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_table() {
        let c = parse(Some(&mount_cap("", Mode::SingleNodeWriter))).unwrap();
        assert_eq!(
            c.access,
            Access::Mount {
                fs_type: "ext4".into(),
                flags: vec![]
            }
        );
        assert_eq!(
            parse(Some(&mount_cap("XFS", Mode::SingleNodeMultiWriter)))
                .unwrap()
                .access,
            Access::Mount {
                fs_type: "xfs".into(),
                flags: vec![]
            }
        );
        assert_eq!(
            parse(Some(&block_cap(Mode::MultiNodeMultiWriter)))
                .unwrap()
                .access,
            Access::Block
        );
        assert!(parse(None).is_err());
        assert!(parse(Some(&mount_cap("btrfs", Mode::SingleNodeWriter))).is_err());
        assert!(parse(Some(&mount_cap("ext4", Mode::MultiNodeMultiWriter))).is_err());
        assert!(parse(Some(&mount_cap("ext4", Mode::Unknown))).is_err());
        assert!(parse(Some(&VolumeCapability::default())).is_err());
    }
}
