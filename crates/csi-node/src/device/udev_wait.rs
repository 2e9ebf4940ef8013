//! Waiting for a disk through udev: a monitor on the udev netlink group is opened first, then
//! the existing SCSI disks are enumerated (so a disk that appeared before the monitor is not
//! missed), then events are polled until the deadline. No sleep loops. The scan reads only SCSI
//! disks, and an event of any other disk (device-mapper, loop) is dropped by its name, so the
//! cost follows the node's SCSI disks, not all its block devices.
//!
//! Invariant: only devices udev has finished processing are considered (initialized devices,
//! and `add`/`change` events from the udev group, which come after the rules ran), so
//! `ID_PATH` and `ID_SCSI_SERIAL` are present when matched.

use super::{Device, Expected, matcher};
use csi_common::{Error, Result};
use std::{
    collections::HashMap,
    os::fd::AsFd,
    time::{Duration, Instant},
};

fn props(device: &udev::Device) -> HashMap<String, String> {
    device
        .properties()
        .map(|p| {
            (
                p.name().to_string_lossy().into_owned(),
                p.value().to_string_lossy().into_owned(),
            )
        })
        .collect()
}

fn found(device: &udev::Device) -> Option<Device> {
    let path = device.devnode()?.to_path_buf();
    Some(Device {
        name: device.sysname().to_string_lossy().into_owned(),
        path,
        udev_serial: device
            .property_value("ID_SCSI_SERIAL")
            .map(|v| v.to_string_lossy().into_owned()),
    })
}

/// How the kernel names SCSI disks (`sd` and letters, sd(4)): an iSCSI LUN's disk is one.
/// Partitions (`sda1`) match too and are refused by the matcher (`DEVTYPE=partition`).
const SCSI_DISK_PREFIX: &str = "sd";

/// `device` as the disk of `expected`, if it is. A device not named as a SCSI disk is dropped
/// by its name, and only one whose `ID_PATH` names the expected disk has all its properties
/// collected for the matcher: other SCSI disks cost one property lookup each.
fn matching(device: &udev::Device, expected: &Expected) -> Option<Device> {
    if !device
        .sysname()
        .to_string_lossy()
        .starts_with(SCSI_DISK_PREFIX)
    {
        return None;
    }
    let id_path = device.property_value("ID_PATH")?;
    if matcher::id_path_matches(&id_path.to_string_lossy(), expected)
        && matcher::matches(&props(device), expected)
    {
        found(device)
    } else {
        None
    }
}

#[allow(clippy::needless_pass_by_value, reason = "the shape map_err wants")]
fn udev_error(e: std::io::Error) -> Error {
    Error::unavailable(format!("udev: {e}"))
}

fn wait_blocking(expected: &Expected, timeout: Duration) -> Result<Device> {
    let started = Instant::now();
    let deadline = started + timeout;
    let socket = udev::MonitorBuilder::new()
        .and_then(|b| b.match_subsystem_devtype("block", "disk"))
        .and_then(udev::MonitorBuilder::listen)
        .map_err(udev_error)?;
    let mut enumerator = udev::Enumerator::new().map_err(udev_error)?;
    enumerator.match_subsystem("block").map_err(udev_error)?;
    // Only SCSI disks: libudev tests the name before it reads a device, so the scan's cost
    // follows the node's SCSI disks, not every block device (a host with thousands of
    // device-mapper or loop devices paid about 0.7 ms for each under TCG).
    enumerator
        .match_sysname(format!("{SCSI_DISK_PREFIX}*"))
        .map_err(udev_error)?;
    // No ID_PATH filter here: the matcher compares portals as addresses, udev only as text.
    let mut scanned = 0_usize;
    for device in enumerator.scan_devices().map_err(udev_error)? {
        scanned += 1;
        if device.is_initialized()
            && let Some(dev) = matching(&device, expected)
        {
            return Ok(dev);
        }
    }
    tracing::debug!(
        scanned,
        ms = started.elapsed().as_millis(),
        "udev: monitor open and SCSI disks enumerated; waiting for the disk's event"
    );
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::deadline_exceeded(format!(
                "disk {} did not appear within {timeout:?}",
                expected.id_path()
            )));
        }
        let ms = u16::try_from(left.as_millis().clamp(1, 10_000)).unwrap_or(10_000);
        let mut fds = [nix::poll::PollFd::new(
            socket.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::internal(format!("poll udev monitor: {e}"))),
        }
        for event in socket.iter() {
            let relevant = matches!(
                event.event_type(),
                udev::EventType::Add | udev::EventType::Change
            );
            if relevant && let Some(dev) = matching(&event.device(), expected) {
                return Ok(dev);
            }
        }
    }
}

/// Waits up to `timeout` for the disk of `expected` (runs on a blocking thread).
pub async fn wait_for(expected: Expected, timeout: Duration) -> Result<Device> {
    // In the caller's span, so what the wait logs carries the RPC's request id.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| wait_blocking(&expected, timeout)))
        .await
        .map_err(|e| Error::internal(format!("udev wait task: {e}")))?
}
