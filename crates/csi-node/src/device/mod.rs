//! Block devices of iSCSI volumes: finding the disk after login, verifying it, flushing and
//! deleting it on teardown, behind [`DeviceLocator`].
//!
//! Invariants: the disk is found through udev (event monitor with a deadline plus an initial
//! enumeration, no sleep loops) by its exact by-path identity; its serial is checked from two
//! sources, the kernel's VPD page 0x80 in sysfs and udev's `ID_SCSI_SERIAL`, before anyone
//! writes to it; the SCSI device is deleted through sysfs before logout and rescanned through
//! sysfs (never a shell) after the volume grew.

pub mod matcher;
pub mod readonly;
pub mod sys;
pub mod udev_wait;

use crate::iscsi::Removal;
use csi_common::{Result, command::BoxFuture};
use std::{fmt, path::PathBuf, time::Duration};

pub use matcher::Expected;

/// A disk found for a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Kernel name, e.g. `sda`.
    pub name: String,
    /// Device node, e.g. `/dev/sda`.
    pub path: PathBuf,
    /// udev's `ID_SCSI_SERIAL`, if udev set it.
    pub udev_serial: Option<String>,
}

impl Device {
    /// A device known only by its kernel name (from sysfs).
    pub fn from_name(name: &str) -> Self {
        Self {
            name: name.to_string(),
            path: PathBuf::from("/dev").join(name),
            udev_serial: None,
        }
    }
}

/// Device operations the node needs.
pub trait DeviceLocator: Send + Sync + fmt::Debug {
    /// Waits up to `timeout` for the disk udev reports for `expected`.
    fn wait_for<'a>(
        &'a self,
        expected: &'a Expected,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Device>>;
    /// The unit serial the kernel read from the disk (VPD page 0x80). For a multipath map, the
    /// serial every one of its paths reports (an error when they disagree or it has none).
    fn kernel_serial(&self, device: &Device) -> Result<String>;
    /// The WWID the kernel read from the disk (sysfs `device/wwid`, from VPD page 0x83, e.g.
    /// `naa.60014055a0c1e0000004000800000000`).
    fn kernel_wwid(&self, device: &Device) -> Result<String>;
    /// The size of the disk in bytes.
    fn size_bytes(&self, device: &Device) -> Result<u64>;
    /// Whether the disk still exists.
    fn exists(&self, device: &Device) -> bool;
    /// Flushes the disk's buffers.
    fn flush<'a>(&'a self, device: &'a Device) -> BoxFuture<'a, Result<()>>;
    /// Deletes the SCSI device through sysfs.
    fn delete(&self, device: &Device) -> Result<Removal>;
    /// Makes the SCSI layer re-read the disk's capacity (sysfs `device/rescan`), so a volume
    /// grown on the target shows its new size. For a multipath map: every path, then
    /// `multipathd resize map <name>` (multipathd(8)).
    fn rescan<'a>(&'a self, device: &'a Device) -> BoxFuture<'a, Result<()>>;
    /// The read-only view `name` of `device` (see [`readonly`]), created if missing; the kernel
    /// refuses writes to it.
    fn readonly_view<'a>(
        &'a self,
        device: &'a Device,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Device>>;
    /// Removes the read-only view `name` if it exists.
    fn remove_readonly_view<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Removal>>;
}
