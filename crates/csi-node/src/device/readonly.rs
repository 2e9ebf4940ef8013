//! Read-only views of a disk for read-only block publications: a device-mapper `linear` map over
//! the whole disk, created `--readonly`, one per publication.
//!
//! Why: a read-only bind mount does not stop writes through a device node (open(2) checks a
//! mount's read-only flag only for files it would modify), and `BLKROSET` on the disk would
//! make every other publication of it read-only too. The kernel refuses writes to a read-only
//! block device (`blkdev_write_iter`: EPERM), so the pod gets a device that cannot write.
//!
//! Invariants: a view's name is `carve-ro-` plus a hash of the volume and the publish target,
//! so a retried publish finds its own view; only maps named `carve-ro-*` are ever removed; the
//! view is found through sysfs (`/sys/class/block/dm-N/dm/name`), never a shell.

use super::Device;
use crate::iscsi::Removal;
use csi_common::{
    Error, Result,
    command::{Cmd, CommandRunner},
};
use std::{path::Path, sync::Arc, time::Duration};

/// Prefix of every read-only view's device-mapper name.
pub const PREFIX: &str = "carve-ro-";

/// The view name of a read-only publication of `volume` at `target` (FNV-1a 64 of both: short,
/// deterministic, made of `[0-9a-f]`).
pub fn view_name(volume: &str, target: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in volume
        .bytes()
        .chain([0])
        .chain(target.as_os_str().as_encoded_bytes().iter().copied())
    {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{PREFIX}{hash:016x}")
}

/// `dmsetup` argv to create the view `name` of `sectors` 512-byte sectors over `disk`.
pub fn create_cmd(name: &str, disk: &Path, sectors: u64) -> Cmd {
    Cmd::new("dmsetup")
        .args(["create", "--readonly", name, "--table"])
        .arg(format!("0 {sectors} linear {} 0", disk.display()))
}

/// Read-only views through `dmsetup` and sysfs.
#[derive(Debug, Clone)]
pub struct Views {
    /// Runs `dmsetup`.
    pub runner: Arc<dyn CommandRunner>,
    /// sysfs root (`/sys`).
    pub sys: std::path::PathBuf,
    /// Timeout of `dmsetup`.
    pub timeout: Duration,
}

impl Views {
    /// The kernel name (`dm-N`) of the device-mapper device called `name`, if it exists.
    pub fn find(&self, name: &str) -> Result<Option<String>> {
        let dir = self.sys.join("class/block");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => return Err(Error::internal(format!("read {}: {e}", dir.display()))),
        };
        for entry in entries.flatten() {
            let kname = entry.file_name().to_string_lossy().into_owned();
            if kname.starts_with("dm-") && self.dm_name(&kname).as_deref() == Some(name) {
                return Ok(Some(kname));
            }
        }
        Ok(None)
    }

    /// The device-mapper name of the kernel device `kname`, if it is a device-mapper device.
    pub fn dm_name(&self, kname: &str) -> Option<String> {
        let path = self.sys.join("class/block").join(kname).join("dm/name");
        std::fs::read_to_string(path)
            .ok()
            .map(|n| n.trim().to_string())
    }

    /// The read-only view `name` of `disk` (`sectors` long), created if missing; checks that the
    /// kernel treats it as read-only (`/sys/class/block/dm-N/ro`).
    pub async fn ensure(&self, name: &str, disk: &Device, sectors: u64) -> Result<Device> {
        let kname = if let Some(k) = self.find(name)? {
            k
        } else {
            let cmd = create_cmd(name, &disk.path, sectors).timeout(self.timeout);
            self.runner.run(&cmd).await?.ok()?;
            self.find(name)?.ok_or_else(|| {
                Error::internal(format!(
                    "device-mapper device {name} not found after create"
                ))
            })?
        };
        let ro = self.sys.join("class/block").join(&kname).join("ro");
        let flag = std::fs::read_to_string(&ro)
            .map_err(|e| Error::internal(format!("read {}: {e}", ro.display())))?;
        if flag.trim() != "1" {
            return Err(Error::internal(format!(
                "device-mapper device {name} ({kname}) is not read-only"
            )));
        }
        Ok(Device::from_name(&kname))
    }

    /// Removes the view called `name` if it exists (only `carve-ro-*` names are accepted).
    pub async fn remove(&self, name: &str) -> Result<Removal> {
        if !name.starts_with(PREFIX) {
            return Err(Error::internal(format!(
                "{name} is not a Carve read-only view"
            )));
        }
        if self.find(name)?.is_none() {
            return Ok(Removal::NotFound);
        }
        // --retry: udev may still be probing the device it saw appear.
        let cmd = Cmd::new("dmsetup")
            .args(["remove", "--retry", name])
            .timeout(self.timeout);
        self.runner.run(&cmd).await?.ok()?;
        Ok(Removal::Removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::command::{Expectation, ScriptedRunner};

    #[test]
    fn names_are_stable_distinct_and_safe() {
        let a = view_name("csi-v1", Path::new("/pods/a"));
        assert_eq!(a, view_name("csi-v1", Path::new("/pods/a")));
        assert_ne!(a, view_name("csi-v1", Path::new("/pods/b")));
        assert_ne!(a, view_name("csi-v2", Path::new("/pods/a")));
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 16);
        let cmd = create_cmd(&a, Path::new("/dev/sdb"), 2048);
        let argv: Vec<&str> = std::iter::once(cmd.program())
            .chain(cmd.arg_values())
            .collect();
        assert_eq!(
            argv,
            [
                "dmsetup",
                "create",
                "--readonly",
                &a,
                "--table",
                "0 2048 linear /dev/sdb 0"
            ]
        );
    }

    #[tokio::test]
    async fn ensure_creates_once_checks_ro_and_remove_touches_only_ours() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        let fake = Arc::new(ScriptedRunner::new());
        let views = Views {
            runner: fake.clone(),
            sys: sys.into(),
            timeout: Duration::from_secs(5),
        };
        let name = view_name("csi-v1", Path::new("/pods/a"));
        let dm = |k: &str, n: &str, ro: &str| {
            std::fs::create_dir_all(sys.join(format!("class/block/{k}/dm"))).unwrap();
            std::fs::write(
                sys.join(format!("class/block/{k}/dm/name")),
                format!("{n}\n"),
            )
            .unwrap();
            std::fs::write(sys.join(format!("class/block/{k}/ro")), ro).unwrap();
        };
        dm("dm-0", "tenant-vg-lv", "0\n");
        std::fs::create_dir_all(sys.join("class/block/sdb")).unwrap();
        let disk = Device::from_name("sdb");
        fake.expect(Expectation::new([
            "dmsetup",
            "create",
            "--readonly",
            &name,
            "--table",
            "0 2048 linear /dev/sdb 0",
        ]));
        assert!(
            views.ensure(&name, &disk, 2048).await.is_err(),
            "never appeared"
        );
        dm("dm-4", &name, "1\n");
        let view = views.ensure(&name, &disk, 2048).await.unwrap();
        assert_eq!(view.path, Path::new("/dev/dm-4"));
        fake.finish(); // the second ensure found it: no second create
        dm("dm-4", &name, "0\n");
        assert!(views.ensure(&name, &disk, 2048).await.is_err(), "writable");
        assert!(views.remove("tenant-vg-lv").await.is_err(), "not ours");
        let other = view_name("csi-v1", Path::new("/pods/b"));
        assert_eq!(views.remove(&other).await.unwrap(), Removal::NotFound);
        fake.expect(Expectation::new(["dmsetup", "remove", "--retry", &name]));
        assert_eq!(views.remove(&name).await.unwrap(), Removal::Removed);
        fake.finish();
    }
}
