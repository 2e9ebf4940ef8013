//! Mounts: the mount table, mounting a filesystem, bind mounts and unmounting, behind
//! [`Mounter`]; all through `nix::mount`, never the `mount` program.
//!
//! Invariants: mount flags from a capability are parsed into kernel flags and fs data here,
//! and flags that would change what a mount *is* (bind, move, remount, propagation) are refused.

pub mod mountinfo;
pub mod sys;

use csi_common::{Error, Result};
use nix::mount::MsFlags;
use std::{fmt, path::Path};

pub use mountinfo::MountInfo;

/// Kernel flags plus filesystem-specific data, as `mount(2)` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Generic flags (`MS_*`).
    pub flags: MsFlags,
    /// Filesystem options, comma-separated.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            flags: MsFlags::empty(),
            data: String::new(),
        }
    }
}

/// A filesystem mount: the filesystem of type `fs_type` on `device`, at the directory `target`,
/// with `options`.
#[derive(Debug, Clone, Copy)]
pub struct FsMount<'a> {
    /// The block device holding the filesystem.
    pub device: &'a Path,
    /// The directory to mount it at.
    pub target: &'a Path,
    /// The filesystem type (`ext4`, `xfs`).
    pub fs_type: &'a str,
    /// Flags and data.
    pub options: &'a MountOptions,
}

/// Parses CSI mount flags (each may itself be comma-separated) into [`MountOptions`].
pub fn parse_flags(flags: &[String]) -> Result<MountOptions> {
    let mut out = MountOptions::default();
    let mut data = Vec::new();
    for flag in flags.iter().flat_map(|f| f.split(',')).map(str::trim) {
        let bit = match flag {
            "" | "rw" | "defaults" => continue,
            "ro" => MsFlags::MS_RDONLY,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            "strictatime" => MsFlags::MS_STRICTATIME,
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "sync" => MsFlags::MS_SYNCHRONOUS,
            "dirsync" => MsFlags::MS_DIRSYNC,
            "bind" | "rbind" | "move" | "remount" | "shared" | "rshared" | "private"
            | "rprivate" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                return Err(Error::invalid_argument(format!(
                    "mount flag {flag:?} is not allowed"
                )));
            }
            other => {
                if other.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(Error::invalid_argument(format!(
                        "mount flag {other:?} is malformed"
                    )));
                }
                data.push(other.to_string());
                continue;
            }
        };
        out.flags |= bit;
    }
    out.data = data.join(",");
    Ok(out)
}

/// Mount operations the node needs.
pub trait Mounter: Send + Sync + fmt::Debug {
    /// The current mount table.
    fn table(&self) -> Result<Vec<MountInfo>>;
    /// Mounts the filesystem `spec` describes.
    fn mount_fs(&self, spec: &FsMount<'_>) -> Result<()>;
    /// Bind-mounts `source` onto `target` (a directory, or a file for a device node).
    fn bind(&self, source: &Path, target: &Path, readonly: bool) -> Result<()>;
    /// Unmounts whatever is mounted at `target`.
    fn unmount(&self, target: &Path) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_table() {
        let o =
            parse_flags(&["noatime,ro".into(), "discard".into(), "data=ordered".into()]).unwrap();
        assert_eq!(o.flags, MsFlags::MS_NOATIME | MsFlags::MS_RDONLY);
        assert_eq!(o.data, "discard,data=ordered");
        assert_eq!(parse_flags(&[]).unwrap(), MountOptions::default());
        for bad in ["bind", "remount", "rshared", "a b"] {
            assert!(parse_flags(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
