//! What the node's kernel says about a disk and its filesystem beyond our own mount table: who
//! else holds the disk (device-mapper or md holders, mounts in other mount namespaces, an
//! exclusive opener) and whether a mounted filesystem is still healthy.
//!
//! Invariants: every check fails closed: a holder list, a namespace or a mount table that
//! cannot be read is an error, never "nobody"; a process that exits during the scan is skipped.
//! The sysfs and procfs roots are parameters, so the checks are tested on plain trees.

use crate::mount::{MountInfo, mountinfo};
use csi_common::{Error, Result};
use std::{collections::BTreeSet, io::ErrorKind, os::unix::fs::OpenOptionsExt, path::PathBuf};

/// The kernel's view of disks and filesystems, read from sysfs and procfs.
#[derive(Debug, Clone)]
pub struct HostView {
    /// sysfs root (`/sys`).
    pub sys: PathBuf,
    /// procfs root (`/proc`; the host's, so the node plugin needs the host PID namespace).
    pub proc: PathBuf,
    /// Device node directory (`/dev`).
    pub dev: PathBuf,
}

impl Default for HostView {
    fn default() -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            dev: PathBuf::from("/dev"),
        }
    }
}

impl HostView {
    /// Kernel names of the devices stacked on `disk` (`/sys/class/block/<disk>/holders`, e.g.
    /// `dm-3` of an activated VG). A disk that no longer exists has none.
    pub fn holders(&self, disk: &str) -> Result<Vec<String>> {
        let dir = self.sys.join("class/block").join(disk).join("holders");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::internal(format!("read {}: {e}", dir.display()))),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::internal(format!("read {}: {e}", dir.display())))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// The device number (`major:minor`) of `disk`, `None` if the disk no longer exists.
    pub fn dev_number(&self, disk: &str) -> Option<(u32, u32)> {
        let text =
            std::fs::read_to_string(self.sys.join("class/block").join(disk).join("dev")).ok()?;
        let (major, minor) = text.trim().split_once(':')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    }

    /// Mounts of the filesystem on `major:minor` in mount namespaces other than ours that an
    /// unmount of `ours` does not take with it (not its propagation peers or slaves), each as
    /// `"<mount point> (pid <pid>)"`. Source: proc(5) `/proc/<pid>/ns/mnt` and `mountinfo`.
    pub fn foreign_mounts(
        &self,
        major: u32,
        minor: u32,
        ours: &[&MountInfo],
    ) -> Result<Vec<String>> {
        let own = self.namespace("self")?.ok_or_else(|| {
            Error::internal(format!("{}/self/ns/mnt is missing", self.proc.display()))
        })?;
        let dir = std::fs::read_dir(&self.proc)
            .map_err(|e| Error::internal(format!("read {}: {e}", self.proc.display())))?;
        let mut seen = BTreeSet::from([own]);
        let mut found = Vec::new();
        for entry in dir.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Some(ns) = self.namespace(&pid)? else {
                continue; // exited
            };
            if !seen.insert(ns) {
                continue;
            }
            let path = self.proc.join(&pid).join("mountinfo");
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
                Err(e) => return Err(Error::internal(format!("read {}: {e}", path.display()))),
            };
            for m in mountinfo::parse(&text)? {
                if (m.major, m.minor) == (major, minor) && !ours.iter().any(|o| m.follows(o)) {
                    found.push(format!("{} (pid {pid})", m.mount_point.display()));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The mount namespace of `pid` (`mnt:[N]`), `None` if the process is gone.
    fn namespace(&self, pid: &str) -> Result<Option<String>> {
        let link = self.proc.join(pid).join("ns/mnt");
        match std::fs::read_link(&link) {
            Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(e) => Err(Error::internal(format!("read {}: {e}", link.display()))),
        }
    }

    /// Whether someone else holds the disk `/dev/<disk>` open exclusively (a mount, a
    /// device-mapper table, an `O_EXCL` opener): an `O_EXCL` open of a block device fails with
    /// EBUSY then (open(2)). `Ok(None)` when free or when the device is gone.
    pub fn exclusive_user(&self, disk: &str) -> Result<Option<String>> {
        let device = self.dev.join(disk);
        let device = device.as_path();
        let open = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
            .open(device);
        match open {
            Ok(_) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(Some(format!(
                "{} is open exclusively elsewhere (mounted or held)",
                device.display()
            ))),
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENXIO)
                    || e.raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::internal(format!("open {}: {e}", device.display()))),
        }
    }

    /// Why the filesystem mounted as `m` is unhealthy, if it is: an XFS shut down or any other
    /// filesystem answering EIO (a `stat` of its mount point: `xfs_vn_getattr` fails with EIO
    /// once shut down), a filesystem that turned itself read-only (superblock option `ro`,
    /// e.g. ext4 `errors=remount-ro`) when `want_writable`, or ext4 errors recorded in its
    /// superblock (`/sys/fs/ext4/<disk>/errors_count`, ext4 sysfs ABI).
    pub fn fs_problem(&self, m: &MountInfo, want_writable: bool) -> Option<String> {
        if let Err(e) = std::fs::symlink_metadata(&m.mount_point)
            && e.raw_os_error() == Some(libc::EIO)
        {
            return Some(format!(
                "the {} filesystem at {} answers I/O errors (shut down)",
                m.fs_type,
                m.mount_point.display()
            ));
        }
        if want_writable && m.super_read_only() {
            return Some(format!(
                "the {} filesystem on {} went read-only (errors?)",
                m.fs_type, m.source
            ));
        }
        // A multipath volume is mounted from its by-id link: ext4's sysfs directory is named
        // after the kernel device the link resolves to (`dm-N`).
        let source = std::fs::canonicalize(&m.source).unwrap_or_else(|_| PathBuf::from(&m.source));
        if m.fs_type == "ext4"
            && let Some(disk) = source.file_name()
        {
            let path = self.sys.join("fs/ext4").join(disk).join("errors_count");
            let count = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if count > 0 {
                return Some(format!(
                    "the ext4 filesystem on {} recorded {count} errors",
                    m.source
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{os::unix::fs::symlink, path::Path};

    fn line(point: &str, tags: &str, super_opts: &str) -> String {
        format!("36 25 8:16 / {point} rw,relatime {tags}- ext4 /dev/sdb {super_opts}\n")
    }

    fn process(proc: &Path, pid: &str, ns: &str, mountinfo: &str) {
        std::fs::create_dir_all(proc.join(pid).join("ns")).unwrap();
        symlink(ns, proc.join(pid).join("ns/mnt")).unwrap();
        std::fs::write(proc.join(pid).join("mountinfo"), mountinfo).unwrap();
    }

    /// A view whose sys, proc and dev are directories under `root`.
    fn view_under(root: &std::path::Path) -> HostView {
        HostView {
            sys: root.join("sys"),
            proc: root.join("proc"),
            dev: root.join("dev"),
        }
    }

    #[test]
    fn holders_and_foreign_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let view = view_under(dir.path());
        assert!(view.holders("sdb").unwrap().is_empty(), "gone disk");
        std::fs::create_dir_all(view.sys.join("class/block/sdb/holders/dm-3")).unwrap();
        assert_eq!(view.holders("sdb").unwrap(), ["dm-3"]);
        assert_eq!(view.dev_number("sdb"), None);
        std::fs::write(view.sys.join("class/block/sdb/dev"), "8:16\n").unwrap();
        assert_eq!(view.dev_number("sdb"), Some((8, 16)));

        let ours = mountinfo::parse(&line("/stage/v", "shared:7 ", "rw")).unwrap();
        process(
            &view.proc,
            "self",
            "mnt:[1]",
            &line("/stage/v", "shared:7 ", "rw"),
        );
        process(
            &view.proc,
            "1",
            "mnt:[1]",
            &line("/stage/v", "shared:7 ", "rw"),
        );
        process(
            &view.proc,
            "20",
            "mnt:[2]",
            &line("/stage/v", "master:7 ", "rw"),
        );
        let ours: Vec<&MountInfo> = ours.iter().collect();
        assert!(view.foreign_mounts(8, 16, &ours).unwrap().is_empty());
        process(&view.proc, "30", "mnt:[3]", &line("/stage/v", "", "rw"));
        assert_eq!(
            view.foreign_mounts(8, 16, &ours).unwrap(),
            ["/stage/v (pid 30)"]
        );
        assert!(view.foreign_mounts(8, 32, &ours).unwrap().is_empty());
        assert_eq!(
            view.foreign_mounts(8, 16, &[]).unwrap(),
            ["/stage/v (pid 20)", "/stage/v (pid 30)"],
            "our own namespace never counts; no staging mount left: every copy does"
        );
    }

    #[test]
    fn filesystem_health() {
        let dir = tempfile::tempdir().unwrap();
        let view = view_under(dir.path());
        let point = dir.path().display().to_string();
        let healthy = &mountinfo::parse(&line(&point, "", "rw,errors=remount-ro")).unwrap()[0];
        assert_eq!(view.fs_problem(healthy, true), None);
        let ro = &mountinfo::parse(&line(&point, "", "ro,errors=remount-ro")).unwrap()[0];
        assert!(view.fs_problem(ro, true).unwrap().contains("read-only"));
        assert_eq!(view.fs_problem(ro, false), None, "a read-only stage");
        std::fs::create_dir_all(view.sys.join("fs/ext4/sdb")).unwrap();
        std::fs::write(view.sys.join("fs/ext4/sdb/errors_count"), "3\n").unwrap();
        assert!(view.fs_problem(healthy, true).unwrap().contains("3 errors"));
    }

    #[test]
    fn exclusive_open_of_a_missing_device_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let view = HostView {
            dev: dir.path().into(),
            ..HostView::default()
        };
        assert_eq!(view.exclusive_user("sdz").unwrap(), None);
        std::fs::write(dir.path().join("sdb"), "").unwrap();
        assert_eq!(view.exclusive_user("sdb").unwrap(), None, "nobody holds it");
    }
}
