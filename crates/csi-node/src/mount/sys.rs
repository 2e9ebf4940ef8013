//! [`Mounter`] on the kernel through `nix::mount`.
//!
//! Invariant: the mount target is opened with `O_PATH | O_NOFOLLOW` and its type checked, and
//! the mount is made on `/proc/self/fd/N`, so a symlink swapped in after validation cannot
//! redirect the mount elsewhere (runc's approach).

use super::{FsMount, MountInfo, Mounter, mountinfo};
use csi_common::{Error, Result};
use nix::{
    fcntl::{OFlag, open},
    mount::{MntFlags, MsFlags, mount, umount2},
    sys::stat::{Mode, SFlag, fstat},
};
use std::{
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

/// The kernel's mounts.
#[derive(Debug, Clone, Default)]
pub struct SysMounter;

fn errno(what: &str, path: &Path, e: nix::errno::Errno) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

/// Opens `target` without following a final symlink and checks it is a directory (or, for
/// `want_dir == false`, a regular file).
fn open_target(target: &Path, want_dir: bool) -> Result<(OwnedFd, PathBuf)> {
    let fd = open(
        target,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno("open mount target", target, e))?;
    let st = fstat(&fd).map_err(|e| errno("stat mount target", target, e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let ok = if want_dir {
        kind == SFlag::S_IFDIR
    } else {
        kind == SFlag::S_IFREG
    };
    if !ok {
        return Err(Error::failed_precondition(format!(
            "mount target {} is not a {} (symlink or other file swapped in?)",
            target.display(),
            if want_dir {
                "directory"
            } else {
                "regular file"
            }
        )));
    }
    let proc_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    Ok((fd, proc_path))
}

impl Mounter for SysMounter {
    fn table(&self) -> Result<Vec<MountInfo>> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::internal(format!("read /proc/self/mountinfo: {e}")))?;
        mountinfo::parse(&text)
    }

    fn mount_fs(&self, spec: &FsMount<'_>) -> Result<()> {
        let FsMount {
            device,
            target,
            fs_type,
            options,
        } = *spec;
        let (_fd, at) = open_target(target, true)?;
        let data = (!options.data.is_empty()).then_some(options.data.as_str());
        mount(Some(device), &at, Some(fs_type), options.flags, data).map_err(|e| {
            errno(
                &format!("mount {} ({fs_type}) on", device.display()),
                target,
                e,
            )
        })
    }

    fn bind(&self, source: &Path, target: &Path, readonly: bool) -> Result<()> {
        let source_is_dir = std::fs::metadata(source)
            .map_err(|e| Error::internal(format!("stat {}: {e}", source.display())))?
            .is_dir();
        let (_fd, at) = open_target(target, source_is_dir)?;
        mount(
            Some(source),
            &at,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| errno(&format!("bind-mount {} on", source.display()), target, e))?;
        if readonly {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            if let Err(e) = mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
                let _ = umount2(target, MntFlags::UMOUNT_NOFOLLOW);
                return Err(errno("remount read-only", target, e));
            }
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        umount2(target, MntFlags::UMOUNT_NOFOLLOW).map_err(|e| errno("unmount", target, e))
    }
}
