//! dm-multipath through multipath-tools: the node's configuration drop-in, assembling the paths
//! of a volume into a map, finding the map by WWID, and removing it, behind [`Multipath`].
//!
//! Invariants: a map is only ever named by its WWID (sysfs `dm/uuid` = `mpath-<wwid>`, device
//! node `/dev/disk/by-id/dm-uuid-mpath-<wwid>`), never by a kernel name remembered from before;
//! multipathd is told about a path only after the caller verified the path's serial and WWID;
//! with find_multipaths left at its "strict" default, multipathd claims only WWIDs registered
//! in its wwids file, so Carve's registrations touch nothing else on the host; a map that
//! cannot be removed is an error (the caller fails and stays retryable), a map that does not
//! exist is [`Removal::NotFound`]. Nothing here knows about CSI or gRPC.

pub mod conf;
pub mod tools;

use crate::{device::Device, iscsi::Removal};
use csi_common::{Result, command::BoxFuture};
use std::fmt;

/// How a volume with several portals is used (`--multipath`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// dm-multipath when the publish context names more than one portal.
    #[default]
    Auto,
    /// dm-multipath always, even over a single portal.
    On,
    /// Never: log in to the first portal only (as before multipath).
    Off,
}

impl Mode {
    /// Whether a stage over `portals` portals uses a map.
    pub fn wants_map(self, portals: usize) -> bool {
        match self {
            Mode::Auto => portals > 1,
            Mode::On => true,
            Mode::Off => false,
        }
    }
}

/// The dm-multipath operations the node needs.
pub trait Multipath: Send + Sync + fmt::Debug {
    /// Writes Carve's configuration drop-in ([`conf::DROP_IN`]) when it is missing or differs
    /// and then has multipathd re-read its configuration; answers whether it wrote.
    fn ensure_config(&self) -> BoxFuture<'_, Result<bool>>;
    /// Registers the WWID of `paths` (`multipath -a`, multipath(8)) and hands each path to
    /// multipathd (`multipathd add path`, multipathd(8)), which creates or extends the map.
    fn assemble<'a>(&'a self, paths: &'a [Device]) -> BoxFuture<'a, Result<()>>;
    /// The map of `wwid` if it exists: kernel name `dm-N` and the by-id device node.
    fn map(&self, wwid: &str) -> Option<Device>;
    /// Whether udev has made the map's device node (`/dev/disk/by-id/dm-uuid-mpath-<wwid>`).
    fn node_ready(&self, map: &Device) -> bool;
    /// Kernel names of the paths under `map` (sysfs `slaves/`).
    fn paths_of(&self, map: &Device) -> Vec<String>;
    /// Flushes and removes the map of `wwid` (`multipath -f <wwid>`).
    fn remove_map<'a>(&'a self, wwid: &'a str) -> BoxFuture<'a, Result<Removal>>;
    /// Removes the WWID of the path `disk` from the wwids file (`multipath -w`), so the LUN is
    /// not claimed again if it ever comes back.
    fn forget<'a>(&'a self, disk: &'a Device) -> BoxFuture<'a, Result<()>>;
}
