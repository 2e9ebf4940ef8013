//! LVM: the one store of volumes. `Lvm` is the trait the operations use; [`LvmCli`] runs the
//! real tools through the command runner.
//!
//! Every successful survey also updates the storage gauges ([`crate::gauges`]).
//!
//! Invariants: every command goes through `Arc<dyn CommandRunner>` with the LVM timeout;
//! mutating commands of one VG are queued one at a time (LVM takes a VG-wide lock anyway, and a
//! queue keeps timeouts meaningful); a command that takes space (create, extend, thin snapshot)
//! is admitted by [`space::admit`] inside that queue, against a survey no mutation has
//! overtaken (the queue counts its mutations: a survey taken at an older count is read again
//! inside the queue), so parallel claims never share the same free bytes; a missing VG is
//! `Unavailable` (the controller keeps serving and says why); no space is `ResourceExhausted`;
//! removing an LV that is already gone succeeds. With [`LvmCli::with_ledger`] (the controller),
//! the figures live in memory ([`ledger`]): admission reads them inside the queue and each
//! mutation updates them in the same turn, so reads and admission run no LVM process.

pub mod argv;
pub mod changes;
mod cli;
pub mod ledger;
pub mod pool_status;
pub mod quarantine;
pub mod report;
pub mod shell;
pub mod space;
pub mod tags;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use argv::Allocation;
pub use argv::SnapshotUse;
pub use cli::{ARCHIVE_TRIM_EVERY, DEFAULT_WIPE_TIMEOUT, LvmCli};
pub use ledger::{Change, Ledger};
pub use report::{LvRow, VgRow};
pub use shell::LvmShell;
pub use space::Claim;

use csi_common::{Result, command::BoxFuture, ids::LvName};
use std::fmt;

/// The LVM operations the controller needs, on one volume group.
pub trait Lvm: Send + Sync + fmt::Debug {
    /// The volume group's name.
    fn vg_name(&self) -> &str;
    /// The volume group's size, free space and extent size.
    fn vg(&self) -> BoxFuture<'_, Result<VgRow>>;
    /// Every LV of the VG.
    fn list(&self) -> BoxFuture<'_, Result<Vec<LvRow>>>;
    /// The VG and every LV in it, from one report (one more only when the VG has no LV), or
    /// from the [`ledger`] when it holds a record.
    fn survey(&self) -> BoxFuture<'_, Result<Survey>>;
    /// Reads the VG and its LVs from LVM now, inside the per-VG queue, and replaces the
    /// [`ledger`]'s record with them (picks up hand edits and the thin pool's usage).
    fn resync(&self) -> BoxFuture<'_, Result<Survey>>;
    /// Reads the thin pool `name` now into the [`ledger`] (its usage, faults and zeroing flag
    /// change with every write and by hand): from device-mapper, outside the per-VG queue, when
    /// the ledger holds the pool's row ([`pool_status`]), else one `lvs vg/pool` inside the
    /// queue; nothing without a ledger.
    fn refresh_pool<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;
    /// The thin pool `name` of the VG, or `None` if there is no thin pool of that name.
    fn pool<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LvRow>>>;
    /// One LV, or `None` (from the [`ledger`] when it holds a record).
    fn get<'a>(&'a self, lv: &'a LvName) -> BoxFuture<'a, Result<Option<LvRow>>>;
    /// One LV as LVM reports it now (never from the ledger), or `None`.
    fn read<'a>(&'a self, lv: &'a LvName) -> BoxFuture<'a, Result<Option<LvRow>>>;
    /// Creates an LV with its tags in one command (so it never exists without them). No space
    /// check: operations use [`Lvm::create_within`].
    fn create<'a>(
        &'a self,
        lv: &'a LvName,
        size: u64,
        allocation: &'a Allocation,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<()>>;
    /// [`Lvm::create`], admitted first against the space figures inside the per-VG queue:
    /// `ResourceExhausted` naming the figures when `within.claim` does not fit.
    fn create_within<'a>(
        &'a self,
        lv: &'a LvName,
        size: u64,
        allocation: &'a Allocation,
        tags: &'a [String],
        within: Within<'a>,
    ) -> BoxFuture<'a, Result<()>>;
    /// [`Lvm::extend`], admitted first as [`Lvm::create_within`] is.
    fn extend_within<'a>(
        &'a self,
        lv: &'a LvName,
        size: u64,
        within: Within<'a>,
    ) -> BoxFuture<'a, Result<()>>;
    /// [`Lvm::snapshot`], admitted first as [`Lvm::create_within`] is.
    fn snapshot_within<'a>(
        &'a self,
        origin: &'a LvName,
        lv: &'a LvName,
        usage: SnapshotUse,
        tags: &'a [String],
        within: Within<'a>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Renames `lv` into quarantine for wiping (see [`quarantine`]): it stops being a volume at
    /// once and keeps its extents until [`Lvm::wipe`]; `Ok(None)` if it did not exist.
    /// `stamp` makes the new name unique ([`quarantine::next_stamp`]).
    fn quarantine<'a>(
        &'a self,
        lv: &'a LvName,
        stamp: u64,
    ) -> BoxFuture<'a, Result<Option<String>>>;
    /// Zeroes then removes the quarantined LV `row` (see [`quarantine`]); any other LV is
    /// refused with `FailedPrecondition`.
    fn wipe<'a>(&'a self, row: &'a LvRow) -> BoxFuture<'a, Result<()>>;
    /// Removes an LV; `Ok(false)` if it did not exist.
    fn remove<'a>(&'a self, lv: &'a LvName) -> BoxFuture<'a, Result<bool>>;
    /// Adds (`add`) or deletes one tag.
    fn set_tag<'a>(&'a self, lv: &'a LvName, tag: &'a str, add: bool) -> BoxFuture<'a, Result<()>>;
    /// Activates an LV (also one with the activation-skip flag).
    fn activate<'a>(&'a self, lv: &'a LvName) -> BoxFuture<'a, Result<()>>;
    /// Creates `lv`, a thin snapshot of the thin LV `origin`, with its tags (see
    /// [`tags::snapshot`]).
    fn snapshot<'a>(
        &'a self,
        origin: &'a LvName,
        lv: &'a LvName,
        usage: SnapshotUse,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<()>>;
    /// Grows an LV to `size` bytes.
    fn extend<'a>(&'a self, lv: &'a LvName, size: u64) -> BoxFuture<'a, Result<()>>;
    /// Deletes the tags `remove` and adds `add`, in one command.
    fn retag<'a>(
        &'a self,
        lv: &'a LvName,
        remove: &'a [String],
        add: &'a [String],
    ) -> BoxFuture<'a, Result<()>>;
}

/// A volume group and its LVs as one report saw them.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// The volume group.
    pub vg: VgRow,
    /// Every (visible) LV of it.
    pub lvs: Vec<LvRow>,
    /// How many mutations the queue had finished when this report was started (a survey is
    /// current inside the queue while that count has not moved).
    pub generation: u64,
}

/// A space claim and the survey the caller already holds (if any), for the `*_within`
/// mutations: the survey is used as it is when no mutation ran since it was taken, else the
/// queue reads a fresh one.
#[derive(Debug, Clone, Copy)]
pub struct Within<'a> {
    /// What the mutation takes.
    pub claim: Claim<'a>,
    /// A survey the caller took (saves a report when still current).
    pub seen: Option<&'a Survey>,
}

impl Survey {
    /// The LV named `lv`, if it exists.
    pub fn lv(&self, lv: &LvName) -> Option<&LvRow> {
        self.lvs.iter().find(|row| row.name == lv.as_str())
    }
}
