//! [`DeviceLocator`] on the real system: udev for discovery, sysfs for serial, size, rescan and
//! deletion, `blockdev --flushbufs` through the command runner.
//!
//! Invariant: the sysfs root is a parameter (`/sys`), so the sysfs parts are tested on a tree.

use super::{Device, DeviceLocator, Expected, matcher, readonly::Views, udev_wait};
use crate::iscsi::Removal;
use csi_common::{
    Error, Result,
    command::{BoxFuture, Cmd, CommandRunner},
};
use std::{path::PathBuf, sync::Arc, time::Duration};

/// Devices through udev and sysfs.
#[derive(Debug, Clone)]
pub struct SysDevices {
    /// Runs `blockdev`.
    pub runner: Arc<dyn CommandRunner>,
    /// sysfs root (`/sys`).
    pub sys: PathBuf,
    /// Timeout of `blockdev`.
    pub timeout: Duration,
    /// The `multipathd` program (`--multipathd-program`), for resizing a map.
    pub multipathd: String,
}

impl SysDevices {
    fn block_dir(&self, device: &Device) -> PathBuf {
        self.sys.join("class/block").join(&device.name)
    }

    /// The paths of `device` when it is a multipath map (`dm/uuid` = `mpath-...`), else `None`.
    fn map_paths(&self, device: &Device) -> Option<Vec<Device>> {
        let uuid = std::fs::read_to_string(self.block_dir(device).join("dm/uuid")).ok()?;
        uuid.trim().starts_with("mpath-").then(|| {
            crate::multipath::tools::slaves(&self.sys, &device.name)
                .iter()
                .map(|n| Device::from_name(n))
                .collect()
        })
    }

    fn views(&self) -> Views {
        Views {
            runner: Arc::clone(&self.runner),
            sys: self.sys.clone(),
            timeout: self.timeout,
        }
    }
}

impl DeviceLocator for SysDevices {
    fn wait_for<'a>(
        &'a self,
        expected: &'a Expected,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Device>> {
        Box::pin(udev_wait::wait_for(expected.clone(), timeout))
    }

    fn kernel_serial(&self, device: &Device) -> Result<String> {
        if let Some(paths) = self.map_paths(device) {
            let mut serials = paths
                .iter()
                .map(|p| self.kernel_serial(p))
                .collect::<Result<Vec<_>>>()?;
            serials.dedup();
            return match serials.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(Error::unavailable(format!(
                    "multipath map {} has no path",
                    device.name
                ))),
                _ => Err(Error::failed_precondition(format!(
                    "the paths of multipath map {} report different serials {serials:?}",
                    device.name
                ))),
            };
        }
        let path = self.block_dir(device).join("device/vpd_pg80");
        let page = std::fs::read(&path)
            .map_err(|e| Error::internal(format!("read {}: {e}", path.display())))?;
        matcher::decode_vpd80(&page)
    }

    fn kernel_wwid(&self, device: &Device) -> Result<String> {
        let path = self.block_dir(device).join("device/wwid");
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_string())
            .map_err(|e| Error::internal(format!("read {}: {e}", path.display())))
    }

    fn size_bytes(&self, device: &Device) -> Result<u64> {
        let path = self.block_dir(device).join("size");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::internal(format!("read {}: {e}", path.display())))?;
        let sectors: u64 = text
            .trim()
            .parse()
            .map_err(|_| Error::internal(format!("{}: not a number", path.display())))?;
        Ok(sectors * 512)
    }

    fn exists(&self, device: &Device) -> bool {
        self.block_dir(device).exists()
    }

    fn flush<'a>(&'a self, device: &'a Device) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let cmd = Cmd::new("blockdev")
                .arg("--flushbufs")
                .arg(device.path.to_string_lossy())
                .timeout(self.timeout);
            self.runner.run(&cmd).await?.ok()?;
            Ok(())
        })
    }

    fn delete(&self, device: &Device) -> Result<Removal> {
        let path = self.block_dir(device).join("device/delete");
        if !path.exists() {
            return Ok(Removal::NotFound);
        }
        std::fs::write(&path, "1")
            .map_err(|e| Error::internal(format!("write {}: {e}", path.display())))?;
        Ok(Removal::Removed)
    }

    fn rescan<'a>(&'a self, device: &'a Device) -> BoxFuture<'a, Result<()>> {
        if let Some(paths) = self.map_paths(device) {
            return Box::pin(async move {
                for path in &paths {
                    self.rescan(path).await?;
                }
                let name = std::fs::read_to_string(self.block_dir(device).join("dm/name"))
                    .map_err(|e| {
                        Error::internal(format!("read dm/name of {}: {e}", device.name))
                    })?;
                let cmd = Cmd::new(&self.multipathd)
                    .args(["resize", "map", name.trim()])
                    .timeout(self.timeout);
                let out = self.runner.run(&cmd).await?.ok()?;
                if out.stdout.trim() == "fail" {
                    return Err(Error::internal(format!(
                        "multipathd resize map {} failed",
                        name.trim()
                    )));
                }
                Ok(())
            });
        }
        let path = self.block_dir(device).join("device/rescan");
        Box::pin(async move {
            // The write returns once the kernel has re-read the capacity (a SCSI command to the
            // target): run it off the async threads.
            tokio::task::spawn_blocking(move || {
                std::fs::write(&path, "1")
                    .map_err(|e| Error::internal(format!("write {}: {e}", path.display())))
            })
            .await
            .map_err(|e| Error::internal(format!("rescan task: {e}")))?
        })
    }

    fn readonly_view<'a>(
        &'a self,
        device: &'a Device,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Device>> {
        Box::pin(async move {
            let sectors = self.size_bytes(device)? / 512;
            self.views().ensure(name, device, sectors).await
        })
    }

    fn remove_readonly_view<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Removal>> {
        Box::pin(async move { self.views().remove(name).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::command::{Expectation, ScriptedRunner};

    /// Devices under the sysfs root `sys`, running commands through `fake`.
    fn devices(fake: &Arc<ScriptedRunner>, sys: &std::path::Path) -> SysDevices {
        SysDevices {
            runner: fake.clone(),
            sys: sys.into(),
            timeout: Duration::from_secs(5),
            multipathd: "multipathd".into(),
        }
    }

    #[tokio::test]
    async fn sysfs_serial_size_delete_and_flush() {
        let sys = tempfile::tempdir().unwrap();
        let dev = sys.path().join("class/block/sda/device");
        std::fs::create_dir_all(&dev).unwrap();
        let mut page = vec![0u8, 0x80, 0, 5];
        page.extend_from_slice(b"ab-12");
        std::fs::write(dev.join("vpd_pg80"), page).unwrap();
        std::fs::write(sys.path().join("class/block/sda/size"), "2097152\n").unwrap();
        std::fs::write(dev.join("delete"), "").unwrap();
        std::fs::write(dev.join("rescan"), "").unwrap();
        let fake = Arc::new(ScriptedRunner::new());
        fake.expect(Expectation::new(["blockdev", "--flushbufs", "/dev/sda"]));
        let d = devices(&fake, sys.path());
        let sda = Device::from_name("sda");
        assert_eq!(d.kernel_serial(&sda).unwrap(), "ab-12");
        std::fs::write(dev.join("wwid"), "naa.6001405ab12\n").unwrap();
        assert_eq!(d.kernel_wwid(&sda).unwrap(), "naa.6001405ab12");
        assert_eq!(d.size_bytes(&sda).unwrap(), 1 << 30);
        assert!(d.exists(&sda));
        d.flush(&sda).await.unwrap();
        d.rescan(&sda).await.unwrap();
        assert_eq!(std::fs::read_to_string(dev.join("rescan")).unwrap(), "1");
        assert_eq!(d.delete(&sda).unwrap(), Removal::Removed);
        assert_eq!(std::fs::read_to_string(dev.join("delete")).unwrap(), "1");
        let gone = Device::from_name("sdz");
        assert_eq!(d.delete(&gone).unwrap(), Removal::NotFound);
        assert!(d.kernel_serial(&gone).is_err());
        assert!(d.rescan(&gone).await.is_err(), "no device, no rescan");
        fake.finish();
    }

    #[tokio::test]
    async fn a_multipath_map_answers_its_paths_serial_and_rescans_every_path() {
        let sys = tempfile::tempdir().unwrap();
        let block = sys.path().join("class/block");
        for (disk, serial) in [("sda", "ab-12"), ("sdb", "ab-12")] {
            std::fs::create_dir_all(block.join(disk).join("device")).unwrap();
            let mut page = vec![0u8, 0x80, 0, u8::try_from(serial.len()).unwrap()];
            page.extend_from_slice(serial.as_bytes());
            std::fs::write(block.join(disk).join("device/vpd_pg80"), page).unwrap();
            std::fs::write(block.join(disk).join("device/rescan"), "").unwrap();
            std::fs::create_dir_all(block.join("dm-5/slaves").join(disk)).unwrap();
        }
        std::fs::create_dir_all(block.join("dm-5/dm")).unwrap();
        std::fs::write(block.join("dm-5/dm/uuid"), "mpath-36001405ab\n").unwrap();
        std::fs::write(block.join("dm-5/dm/name"), "36001405ab\n").unwrap();
        let fake = Arc::new(ScriptedRunner::new());
        fake.expect(Expectation::new(["multipathd", "resize", "map", "36001405ab"]).stdout("ok\n"));
        let d = devices(&fake, sys.path());
        let map = Device::from_name("dm-5");
        assert_eq!(d.kernel_serial(&map).unwrap(), "ab-12");
        d.rescan(&map).await.unwrap();
        for disk in ["sda", "sdb"] {
            let rescan = block.join(disk).join("device/rescan");
            assert_eq!(std::fs::read_to_string(rescan).unwrap(), "1");
        }
        let mut page = vec![0u8, 0x80, 0, 5];
        page.extend_from_slice(b"zz-99");
        std::fs::write(block.join("sdb/device/vpd_pg80"), page).unwrap();
        let err = d.kernel_serial(&map).unwrap_err();
        assert!(err.message().contains("different serials"), "{err}");
        fake.finish();
    }
}
