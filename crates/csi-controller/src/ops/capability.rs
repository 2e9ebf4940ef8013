//! Volume capabilities: which access types and modes Carve serves, and the summary kept in tags.
//!
//! Invariants: only single-node access modes are supported (a volume is attached to one node
//! at a time through one ACL); a mount capability names ext4, xfs or nothing (the node's
//! default); anything else is `InvalidArgument` with the reason.

use csi_common::{Error, Result};
use csi_proto::v1::{
    VolumeCapability,
    volume_capability::{AccessType, access_mode::Mode},
};

/// mkfs.xfs (xfsprogs 6.1) refuses filesystems under 300 MB.
pub const XFS_MIN_BYTES: u64 = 300 * 1024 * 1024;

/// Filesystem types a mount capability may name.
pub const FS_TYPES: &[&str] = &["ext4", "xfs"];

/// The access modes Carve serves.
pub const MODES: &[Mode] = &[
    Mode::SingleNodeWriter,
    Mode::SingleNodeReaderOnly,
    Mode::SingleNodeSingleWriter,
    Mode::SingleNodeMultiWriter,
];

/// A validated capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// `None` for raw block, else the filesystem type (`""`: the node's default).
    pub fs_type: Option<String>,
    /// The access mode.
    pub mode: Mode,
}

impl Capability {
    /// Whether the mode only reads.
    pub fn read_only(&self) -> bool {
        self.mode == Mode::SingleNodeReaderOnly
    }

    fn summary(&self) -> String {
        let access = match &self.fs_type {
            None => "block".to_string(),
            Some(fs) => format!("mount/{fs}"),
        };
        format!("{access}/{}", self.mode.as_str_name())
    }
}

/// Validates one capability.
pub fn parse(cap: &VolumeCapability) -> Result<Capability> {
    let fs_type = match &cap.access_type {
        Some(AccessType::Block(_)) => None,
        Some(AccessType::Mount(mount)) => {
            let fs = mount.fs_type.to_ascii_lowercase();
            if !fs.is_empty() && !FS_TYPES.contains(&fs.as_str()) {
                return Err(Error::invalid_argument(format!(
                    "filesystem type {:?} is not supported (supported: {})",
                    mount.fs_type,
                    FS_TYPES.join(", ")
                )));
            }
            Some(fs)
        }
        None => {
            return Err(Error::invalid_argument(
                "volume capability lacks an access type",
            ));
        }
    };
    let mode = csi_common::contract::access_mode(cap)
        .ok_or_else(|| Error::invalid_argument("volume capability lacks an access mode"))?;
    if !MODES.contains(&mode) {
        return Err(Error::invalid_argument(format!(
            "access mode {} is not supported: a Carve volume is attached to one node at a time",
            mode.as_str_name()
        )));
    }
    Ok(Capability { fs_type, mode })
}

/// Validates a non-empty list of capabilities.
pub fn parse_all(caps: &[VolumeCapability]) -> Result<Vec<Capability>> {
    if caps.is_empty() {
        return Err(Error::invalid_argument("volume_capabilities is required"));
    }
    caps.iter().map(parse).collect()
}

/// The smallest volume these capabilities can use.
pub fn minimum_bytes(caps: &[Capability]) -> u64 {
    if caps.iter().any(|c| c.fs_type.as_deref() == Some("xfs")) {
        XFS_MIN_BYTES
    } else {
        0
    }
}

/// Whether `cap` can be served by a volume created with the capabilities in `recorded` (the
/// tag summary): the same access type (block or mount) as one of them and, for mount, the same
/// filesystem type unless either leaves it to the node's default. An empty summary (a volume
/// recorded without one) accepts any capability.
pub fn matches_recorded(cap: &Capability, recorded: &str) -> bool {
    if recorded.is_empty() {
        return true;
    }
    recorded.split(',').any(|entry| {
        let mut parts = entry.split('/');
        match (parts.next(), &cap.fs_type) {
            (Some("block"), None) => true,
            (Some("mount"), Some(fs)) => {
                let was = parts.next().unwrap_or("");
                was.is_empty() || fs.is_empty() || was == fs
            }
            _ => false,
        }
    })
}

/// Why a volume created with the capabilities in `recorded` (the tag summary) cannot serve
/// every one of `caps`, if it cannot ([`matches_recorded`] for each). CreateVolume answers
/// ALREADY_EXISTS with it, ValidateVolumeCapabilities leaves its answer unconfirmed with it and
/// ControllerExpandVolume refuses with INVALID_ARGUMENT (spec.md: "incompatible with the
/// specified `volume_capabilities`", "Exceeds capabilities").
pub fn unserved(caps: &[Capability], recorded: &str) -> Option<String> {
    caps.iter()
        .find(|cap| !matches_recorded(cap, recorded))
        .map(|cap| {
            format!(
                "it was created for {recorded:?}, which {} does not match",
                cap.summary()
            )
        })
}

/// The summary recorded in the LV tags (`mount/xfs/SINGLE_NODE_WRITER,block/...`).
pub fn summary(caps: &[Capability]) -> String {
    caps.iter()
        .map(Capability::summary)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
pub(crate) fn mount(fs: &str, mode: Mode) -> VolumeCapability {
    use csi_proto::v1::volume_capability::{AccessMode, MountVolume};
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs.into(),
            ..Default::default()
        })),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::Kind;

    #[test]
    fn a_capability_must_match_the_access_type_and_filesystem_recorded() {
        let cap = |fs: Option<&str>| Capability {
            fs_type: fs.map(str::to_string),
            mode: Mode::SingleNodeWriter,
        };
        let block = "block/SINGLE_NODE_WRITER";
        let ext4 = "mount/ext4/SINGLE_NODE_WRITER";
        let any_fs = "mount//SINGLE_NODE_WRITER";
        assert!(matches_recorded(&cap(None), block));
        assert!(
            !matches_recorded(&cap(Some("ext4")), block),
            "block as mount"
        );
        assert!(!matches_recorded(&cap(None), ext4), "mount as block");
        assert!(matches_recorded(&cap(Some("ext4")), ext4));
        assert!(matches_recorded(&cap(Some("")), ext4));
        assert!(
            !matches_recorded(&cap(Some("xfs")), ext4),
            "another filesystem"
        );
        assert!(matches_recorded(&cap(Some("xfs")), any_fs));
        assert!(matches_recorded(&cap(None), &format!("{ext4},{block}")));
        assert!(matches_recorded(&cap(None), ""), "no summary recorded");
    }

    #[test]
    fn single_node_modes_and_known_filesystems_only() {
        let ok = parse(&mount("XFS", Mode::SingleNodeWriter)).unwrap();
        assert_eq!(ok.fs_type.as_deref(), Some("xfs"));
        assert_eq!(minimum_bytes(std::slice::from_ref(&ok)), XFS_MIN_BYTES);
        assert_eq!(summary(&[ok]), "mount/xfs/SINGLE_NODE_WRITER");
        for bad in [
            mount("ext4", Mode::MultiNodeMultiWriter),
            mount("ext4", Mode::Unknown),
            mount("btrfs", Mode::SingleNodeWriter),
            VolumeCapability::default(),
        ] {
            assert_eq!(
                parse(&bad).unwrap_err().kind(),
                Kind::InvalidArgument,
                "{bad:?}"
            );
        }
        assert_eq!(parse_all(&[]).unwrap_err().kind(), Kind::InvalidArgument);
        assert!(
            parse(&mount("", Mode::SingleNodeReaderOnly))
                .unwrap()
                .read_only()
        );
    }
}
