//! The fake block-device layer: one disk, `/dev/sdb`, with a settable serial and size.

use super::{DISK, disk_for};
use crate::{
    device::{Device, DeviceLocator, Expected},
    iscsi::Removal,
};
use csi_common::{Error, Result, command::BoxFuture};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

/// One disk, `/dev/sdb`, with a settable serial.
#[derive(Debug)]
pub struct FakeDevices {
    /// The serial the disk reports.
    pub serial: Mutex<String>,
    /// Whether the disk exists.
    pub present: Mutex<bool>,
    /// The size the disk reports.
    pub size: Mutex<u64>,
    /// The size a rescan reveals (the LV was grown on the target), if any.
    pub size_after_rescan: Mutex<Option<u64>>,
    /// Calls: `flush sdb`, `delete sdb`, `rescan sdb`.
    pub calls: Mutex<Vec<String>>,
    /// Error the next flush returns.
    pub flush_error: Mutex<Option<Error>>,
    /// Read-only views that exist (all are `dm-9`).
    pub views: Mutex<Vec<String>>,
    /// While set, [`DeviceLocator::wait_for`] times out (the session has no disk).
    pub lun_hidden: Arc<Mutex<bool>>,
    /// Disks other than [`DISK`] that were deleted.
    pub deleted: Mutex<Vec<String>>,
    /// The WWID the disks report (default: the one LIO derives from the serial).
    pub wwid: Mutex<Option<String>>,
}

impl FakeDevices {
    /// A disk with `serial`.
    pub fn new(serial: &str) -> Self {
        Self {
            serial: Mutex::new(serial.into()),
            present: Mutex::new(true),
            size: Mutex::new(64 << 20),
            size_after_rescan: Mutex::default(),
            calls: Mutex::default(),
            flush_error: Mutex::default(),
            views: Mutex::default(),
            lun_hidden: Arc::default(),
            deleted: Mutex::default(),
            wwid: Mutex::default(),
        }
    }
}

impl DeviceLocator for FakeDevices {
    fn wait_for<'a>(
        &'a self,
        expected: &'a Expected,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Device>> {
        if *self.lun_hidden.lock().unwrap() {
            self.calls.lock().unwrap().push("wait timed out".into());
            return Box::pin(std::future::ready(Err(Error::deadline_exceeded(format!(
                "disk did not appear within {timeout:?}"
            )))));
        }
        let name = disk_for(expected.portal);
        if name == DISK {
            *self.present.lock().unwrap() = true;
        } else {
            self.deleted.lock().unwrap().retain(|d| d != name);
        }
        let mut d = Device::from_name(name);
        d.udev_serial = Some(self.serial.lock().unwrap().clone());
        Box::pin(std::future::ready(Ok(d)))
    }

    fn kernel_serial(&self, _device: &Device) -> Result<String> {
        Ok(self.serial.lock().unwrap().clone())
    }

    fn kernel_wwid(&self, _device: &Device) -> Result<String> {
        let wwid = self.wwid.lock().unwrap().clone().unwrap_or_else(|| {
            crate::device::matcher::expected_wwid(&self.serial.lock().unwrap()).unwrap()
        });
        Ok(format!("naa.{}", &wwid[1..]))
    }

    fn size_bytes(&self, _device: &Device) -> Result<u64> {
        Ok(*self.size.lock().unwrap())
    }

    fn exists(&self, device: &Device) -> bool {
        if device.name == DISK {
            *self.present.lock().unwrap()
        } else {
            !self.deleted.lock().unwrap().contains(&device.name)
        }
    }

    fn flush<'a>(&'a self, device: &'a Device) -> BoxFuture<'a, Result<()>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("flush {}", device.name));
        let result = match self.flush_error.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        };
        Box::pin(std::future::ready(result))
    }

    fn delete(&self, device: &Device) -> Result<Removal> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delete {}", device.name));
        if device.name == DISK {
            *self.present.lock().unwrap() = false;
        } else {
            self.deleted.lock().unwrap().push(device.name.clone());
        }
        Ok(Removal::Removed)
    }

    fn rescan<'a>(&'a self, device: &'a Device) -> BoxFuture<'a, Result<()>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("rescan {}", device.name));
        if let Some(size) = *self.size_after_rescan.lock().unwrap() {
            *self.size.lock().unwrap() = size;
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn readonly_view<'a>(
        &'a self,
        device: &'a Device,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Device>> {
        let mut views = self.views.lock().unwrap();
        if !views.iter().any(|v| v == name) {
            views.push(name.to_string());
            self.calls
                .lock()
                .unwrap()
                .push(format!("view {name} of {}", device.name));
        }
        Box::pin(std::future::ready(Ok(Device::from_name("dm-9"))))
    }

    fn remove_readonly_view<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Removal>> {
        let mut views = self.views.lock().unwrap();
        let before = views.len();
        views.retain(|v| v != name);
        let r = if views.len() < before {
            self.calls
                .lock()
                .unwrap()
                .push(format!("remove view {name}"));
            Removal::Removed
        } else {
            Removal::NotFound
        };
        Box::pin(std::future::ready(Ok(r)))
    }
}
