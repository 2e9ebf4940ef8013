//! The ledger: the controller's in-memory record of its volume group (the VG's free bytes and
//! every LV with its tags), so reads and space admission cost no LVM process.
//!
//! The controller is the only writer of its VG (one replica, leader election in the chart), so
//! after one report it can keep the figures itself: [`super::LvmCli`] seeds the ledger from one
//! survey taken *inside* the per-VG queue and applies each mutation's [`Change`] inside the same
//! queue turn, once the command succeeded. LVM stays the durable record: the ledger is only a
//! cache of it.
//!
//! Invariants: the ledger is changed only while the per-VG queue is held, so a change is never
//! applied to a seed that already contains it, and space admission ([`super::space::admit`])
//! reads it with no other mutation in flight (no overcommit under parallel creates); a command
//! that failed, timed out or whose effect is not modelled (thin snapshots) *forgets* the ledger,
//! and the next admission reads LVM again (a needless survey is cheap next to a wrong figure);
//! linear LVs take their extent-rounded size from the VG's free bytes and give it back when
//! removed, thin LVs draw on their pool only; the mapped-data count of a thin LV
//! (`data_percent`, which says whether a volume is provably blank) is kept only while no node
//! can have written since it was read: a thin LV carrying a publication tag, or given one, has
//! `data_percent` unknown (`None`) until the next survey (ControllerPublish then reads that one
//! LV from LVM, [`super::Lvm::read`], before it says blank). Figures LVM changes on its own (a thin
//! pool's data and metadata usage, its faults and zeroing flag) are read again from device-mapper
//! ([`super::pool_status`]; one `lvs vg/pool` when that cannot be read), off the request path
//! ([`super::Lvm::refresh_pool`], every `--thin-pool-refresh-interval`); the
//! ledger knows when each pool was read ([`Ledger::pool_age`]) and a thin admission reads the
//! pool itself when that is older than its limit, so a thin LV is never admitted into a pool
//! seen stopped zeroing or full, and never on figures older than that limit. Operators' hand
//! edits are picked up by a resync ([`super::Lvm::resync`]: periodic, and on SIGHUP).

use super::{
    LvRow, Survey,
    pool_status::{self, PoolStatus},
    tags::PUBLISHED,
};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// One mutation's effect on the volume group, applied once its command succeeded.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// `lvcreate` of `lv`, thin in `pool` when `Some`, with its tags.
    Created {
        /// The LV's name.
        lv: &'a str,
        /// Bytes asked (rounded up to the extent size as LVM does).
        size: u64,
        /// The thin pool of a thin LV.
        pool: Option<&'a str>,
        /// The tags it was created with.
        tags: &'a [String],
    },
    /// `lvremove` of `lv`.
    Removed {
        /// The LV's name.
        lv: &'a str,
    },
    /// `lvrename` of `from` to `to`.
    Renamed {
        /// The old name.
        from: &'a str,
        /// The new name.
        to: &'a str,
    },
    /// `lvchange --deltag`/`--addtag` on `lv`.
    Tagged {
        /// The LV's name.
        lv: &'a str,
        /// Tags deleted.
        remove: &'a [String],
        /// Tags added.
        add: &'a [String],
    },
    /// `lvchange --activate y` of `lv`.
    Activated {
        /// The LV's name.
        lv: &'a str,
    },
    /// `lvextend` of `lv` to `size` bytes.
    Extended {
        /// The LV's name.
        lv: &'a str,
        /// The new size in bytes.
        size: u64,
    },
    /// A change the ledger does not model: it is forgotten and read again.
    Unmodelled,
}

/// The in-memory record of one VG (see the module documentation).
#[derive(Debug, Default)]
pub struct Ledger {
    survey: Option<Survey>,
    /// When each thin pool's row was last read from LVM (by a seed or a pool read).
    pools_read: HashMap<String, Instant>,
}

impl Ledger {
    /// The record, or `None` until seeded (or since it was forgotten).
    pub fn current(&self) -> Option<&Survey> {
        self.survey.as_ref()
    }

    /// Replaces the record with `survey`, read inside the per-VG queue.
    pub fn seed(&mut self, mut survey: Survey) {
        for row in &mut survey.lvs {
            if is_thin_volume(row) && row.tags.iter().any(|t| t.starts_with(PUBLISHED)) {
                row.data_percent = None;
            }
        }
        let now = Instant::now();
        self.pools_read = survey
            .lvs
            .iter()
            .filter(|row| row.is_thin_pool())
            .map(|row| (row.name.clone(), now))
            .collect();
        self.survey = Some(survey);
    }

    /// Replaces the thin pool `name`'s row with `row` as just read (`None`: there is no such
    /// pool any more).
    pub fn pool_read(&mut self, name: &str, row: Option<LvRow>) {
        let Some(survey) = self.survey.as_mut() else {
            return;
        };
        survey.lvs.retain(|r| !(r.name == name && r.is_thin_pool()));
        if row.is_some() {
            self.pools_read.insert(name.to_string(), Instant::now());
        } else {
            self.pools_read.remove(name);
        }
        survey.lvs.extend(row);
    }

    /// Rewrites the thin pool `name`'s row in place with what device-mapper says of it now
    /// ([`super::pool_status::refresh`]) and counts that as a reading; `false` (nothing
    /// changed) when the record holds no such row.
    pub fn pool_status_read(&mut self, name: &str, status: &PoolStatus) -> bool {
        let Some(survey) = self.survey.as_mut() else {
            return false;
        };
        let Some(row) = survey
            .lvs
            .iter_mut()
            .find(|r| r.name == name && r.is_thin_pool())
        else {
            return false;
        };
        *row = pool_status::refresh(row, status);
        self.pools_read.insert(name.to_string(), Instant::now());
        true
    }

    /// How long ago the thin pool `name`'s row was read (from LVM or device-mapper); `None` when the record holds
    /// no such row (never read, no such pool, or the record was forgotten).
    pub fn pool_age(&self, name: &str) -> Option<Duration> {
        self.survey.as_ref()?;
        self.pools_read.get(name).map(Instant::elapsed)
    }

    /// Drops the record: the next admission reads LVM again.
    pub fn forget(&mut self) {
        self.survey = None;
        self.pools_read.clear();
    }

    /// Applies `change`, made by a command that succeeded. A change that does not fit the
    /// record (an LV it does not know) forgets it instead: the record is then known wrong.
    pub fn apply(&mut self, change: &Change<'_>) {
        let Some(survey) = self.survey.as_mut() else {
            return;
        };
        if !apply(survey, change) {
            self.forget();
        }
    }
}

fn is_thin_volume(row: &LvRow) -> bool {
    row.pool.is_some() && !row.is_thin_pool()
}

fn round_up(bytes: u64, extent: u64) -> u64 {
    if extent == 0 {
        return bytes;
    }
    bytes.div_ceil(extent).saturating_mul(extent)
}

/// `false` when the change does not fit `survey`.
fn apply(survey: &mut Survey, change: &Change<'_>) -> bool {
    let extent = survey.vg.extent_size;
    let index = |lvs: &[LvRow], name: &str| lvs.iter().position(|row| row.name == name);
    match *change {
        Change::Created {
            lv,
            size,
            pool,
            tags,
        } => {
            if index(&survey.lvs, lv).is_some() {
                return false;
            }
            let size = round_up(size, extent);
            if pool.is_none() {
                if size > survey.vg.free {
                    return false;
                }
                survey.vg.free -= size;
            }
            survey.lvs.push(LvRow::fresh(lv, size, pool, tags.to_vec()));
        }
        Change::Removed { lv } => {
            let Some(i) = index(&survey.lvs, lv) else {
                return false;
            };
            let row = survey.lvs.swap_remove(i);
            if row.pool.is_none() && !row.is_thin_pool() {
                survey.vg.free = survey.vg.free.saturating_add(row.size).min(survey.vg.size);
            }
        }
        Change::Renamed { from, to } => {
            if index(&survey.lvs, to).is_some() {
                return false;
            }
            let Some(i) = index(&survey.lvs, from) else {
                return false;
            };
            survey.lvs[i].name = to.to_string();
        }
        Change::Tagged { lv, remove, add } => {
            let Some(i) = index(&survey.lvs, lv) else {
                return false;
            };
            let row = &mut survey.lvs[i];
            row.tags.retain(|t| !remove.contains(t));
            for tag in add {
                if !row.tags.contains(tag) {
                    row.tags.push(tag.clone());
                }
            }
            if is_thin_volume(row) && add.iter().any(|t| t.starts_with(PUBLISHED)) {
                row.data_percent = None;
            }
        }
        Change::Activated { lv } => {
            let Some(i) = index(&survey.lvs, lv) else {
                return false;
            };
            let row = &mut survey.lvs[i];
            let mut attr: Vec<char> = row.attr.chars().collect();
            if attr.len() < 5 {
                return false;
            }
            attr[4] = 'a';
            row.attr = attr.into_iter().collect();
        }
        Change::Extended { lv, size } => {
            let Some(i) = index(&survey.lvs, lv) else {
                return false;
            };
            let size = round_up(size, extent);
            let row = &mut survey.lvs[i];
            if size < row.size {
                return false;
            }
            if row.pool.is_none() {
                let more = size - row.size;
                if more > survey.vg.free {
                    return false;
                }
                survey.vg.free -= more;
            }
            row.size = size;
        }
        Change::Unmodelled => return false,
    }
    true
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
