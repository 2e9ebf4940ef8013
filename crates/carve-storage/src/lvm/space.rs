//! Space accounting of one volume group: whether a new LV, or the growth of one, fits.
//!
//! Invariants: a claim is admitted only against figures read inside the per-VG queue (see
//! [`super::LvmCli`]), so two claims can never both be admitted against the same free bytes;
//! linear claims draw on the VG's free bytes; thin claims on the pool's size times the
//! overprovision ratio minus the virtual sizes already promised in that pool (thin LVs and thin
//! snapshots alike); a refusal names every figure it was computed from. Nothing here runs a
//! command: the figures come from a [`Survey`], in the controller the ledger's record
//! ([`super::ledger`]), kept inside the same queue.

use super::{LvRow, Survey};
use csi_common::{Error, Result};
use std::fmt;

/// What an operation wants to take from the volume group, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Claim<'a> {
    /// `bytes` of extents from the VG's free space (a linear LV or its growth).
    Linear {
        /// Bytes wanted.
        bytes: u64,
    },
    /// `bytes` more of virtual size promised in the thin pool `pool`.
    Thin {
        /// The thin pool's LV name.
        pool: &'a str,
        /// Bytes of virtual size wanted.
        bytes: u64,
        /// The pool may promise this many times its size in total (`--thin-overprovision-ratio`).
        ratio: f64,
        /// Refuse a pool that does not zero the chunks it provisions (see [`zeroes_new_blocks`]).
        zeroing_required: bool,
    },
}

/// Why a claim does not fit: the figures, for the `ResourceExhausted` message.
#[derive(Debug, Clone, PartialEq)]
pub enum Shortfall {
    /// The VG has fewer free bytes than wanted.
    VolumeGroup {
        /// Bytes wanted.
        wanted: u64,
        /// The VG's free bytes.
        free: u64,
    },
    /// The thin pool's remaining promise is smaller than wanted.
    ThinPool {
        /// The pool's name.
        pool: String,
        /// Bytes wanted.
        wanted: u64,
        /// The pool's data size in bytes.
        pool_size: u64,
        /// The overprovision ratio.
        ratio: f64,
        /// Virtual bytes already promised in the pool.
        promised: u64,
    },
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortfall::VolumeGroup { wanted, free } => write!(
                f,
                "{wanted} bytes wanted, {free} bytes free in the volume group"
            ),
            Shortfall::ThinPool {
                pool,
                wanted,
                pool_size,
                ratio,
                promised,
            } => {
                let allowed = allowed(*pool_size, *ratio);
                write!(
                    f,
                    "{wanted} bytes wanted from thin pool {pool:?}: {pool_size} bytes x ratio \
                     {ratio} = {allowed} bytes may be promised, {promised} already are, {} left",
                    allowed.saturating_sub(*promised)
                )
            }
        }
    }
}

impl From<Shortfall> for Error {
    fn from(s: Shortfall) -> Self {
        Error::resource_exhausted(s.to_string())
    }
}

/// Whether the thin pool `row` overwrites newly provisioned chunks with zeroes before use
/// (lvs(8), `lv_attr` character 8: `z`; set by `lvcreate --zero y`, the default, or
/// `lvchange --zero`). Without it, a write smaller than a chunk into a new chunk leaves the rest
/// of the chunk's previous bytes readable by the new volume.
pub fn zeroes_new_blocks(row: &LvRow) -> bool {
    row.attr.as_bytes().get(7) == Some(&b'z')
}

/// What is wrong with the thin pool `row` that stops it serving writes, from `lv_attr`
/// character 9 (lvs(8): `F` failed, `M` metadata read-only, `D` out of data space), or
/// `None`.
pub fn pool_fault(row: &LvRow) -> Option<&'static str> {
    match row.attr.as_bytes().get(8) {
        Some(b'F') => Some("failed"),
        Some(b'M') => Some("metadata read-only"),
        Some(b'D') => Some("out of data space"),
        _ => None,
    }
}

/// Why the thin pool `row` cannot take writes, if it cannot: a [`pool_fault`], or its data
/// space 100% used (`data_percent`; a full pool fails every write to an unprovisioned chunk
/// with EIO or queues it).
pub fn pool_condition(row: &LvRow) -> Option<String> {
    if let Some(fault) = pool_fault(row) {
        return Some(format!(
            "thin pool {} is {fault} (lv_attr {})",
            row.name, row.attr
        ));
    }
    match row.data_percent {
        Some(p) if p >= 100.0 => Some(format!(
            "thin pool {} is full ({p:.2}% data used)",
            row.name
        )),
        _ => None,
    }
}

/// Bytes of data the thin pool `row` can still store (its size less the `data_percent` used).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // non-negative; `as` saturates
pub fn pool_free(row: &LvRow) -> u64 {
    if pool_condition(row).is_some() {
        return 0;
    }
    let used = row.data_percent.unwrap_or(0.0).clamp(0.0, 100.0);
    (row.size as f64 * (100.0 - used) / 100.0) as u64
}

/// `FailedPrecondition` unless the pool `row` zeroes new chunks.
pub fn require_zeroing(row: &LvRow) -> Result<()> {
    if zeroes_new_blocks(row) {
        return Ok(());
    }
    Err(Error::failed_precondition(format!(
        "thin pool {:?} does not zero newly provisioned blocks (lv_attr {:?}), so a new thin \
         volume could read a deleted one's data: run `lvchange --zero y` on the pool, or start \
         csi-controller with --allow-unzeroed-thin-pool if every tenant may read every other's",
        row.name, row.attr
    )))
}

/// Bytes a pool of `pool_size` may promise at `ratio` (negative ratios count as 0).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // non-negative; `as` saturates
pub fn allowed(pool_size: u64, ratio: f64) -> u64 {
    (pool_size as f64 * ratio.max(0.0)) as u64
}

/// Virtual bytes already promised in `pool`: every LV whose pool is `pool`.
pub fn promised(lvs: &[LvRow], pool: &str) -> u64 {
    lvs.iter()
        .filter(|row| row.pool.as_deref() == Some(pool))
        .map(|row| row.size)
        .sum()
}

/// The thin pool `pool` among `lvs`, or `Unavailable` (the storage host is not ready).
pub fn pool_row<'a>(lvs: &'a [LvRow], pool: &str) -> Result<&'a LvRow> {
    lvs.iter()
        .find(|row| row.name == pool && row.is_thin_pool())
        .ok_or_else(|| {
            Error::unavailable(format!("thin pool {pool:?} not found in the volume group"))
        })
}

/// Bytes thin volumes may still be promised in `pool` at `ratio`.
pub fn thin_headroom(lvs: &[LvRow], pool: &str, ratio: f64) -> Result<u64> {
    let row = pool_row(lvs, pool)?;
    Ok(allowed(row.size, ratio).saturating_sub(promised(lvs, pool)))
}

/// Admits `claim` against `survey`: `Ok` if it fits, else the [`Shortfall`] as
/// `ResourceExhausted`; a missing pool is `Unavailable`; a pool that does not zero new chunks
/// is `FailedPrecondition` when the claim requires zeroing; a full or faulted pool is
/// `ResourceExhausted` whatever the ratio allows.
pub fn admit(survey: &Survey, claim: &Claim<'_>) -> Result<()> {
    match *claim {
        Claim::Linear { bytes } => {
            if bytes > survey.vg.free {
                return Err(Shortfall::VolumeGroup {
                    wanted: bytes,
                    free: survey.vg.free,
                }
                .into());
            }
        }
        Claim::Thin {
            pool,
            bytes,
            ratio,
            zeroing_required,
        } => {
            let row = pool_row(&survey.lvs, pool)?;
            if zeroing_required {
                require_zeroing(row)?;
            }
            if let Some(why) = pool_condition(row) {
                return Err(Error::resource_exhausted(format!(
                    "{bytes} bytes wanted: {why}"
                )));
            }
            let promised = promised(&survey.lvs, pool);
            if bytes > allowed(row.size, ratio).saturating_sub(promised) {
                return Err(Shortfall::ThinPool {
                    pool: pool.to_string(),
                    wanted: bytes,
                    pool_size: row.size,
                    ratio,
                    promised,
                }
                .into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::VgRow;
    use csi_common::Kind;

    fn survey(free: u64, lvs: Vec<LvRow>) -> Survey {
        Survey {
            vg: VgRow {
                name: "vg".into(),
                size: 16 << 30,
                free,
                extent_size: 4 << 20,
            },
            lvs,
            generation: 0,
        }
    }

    fn pool(size: u64) -> LvRow {
        let mut row = LvRow::fresh("pool", size, None, vec![]);
        row.attr = "twi-aotz--".into();
        row
    }

    #[test]
    fn linear_claims_fit_the_free_bytes_exactly() {
        let s = survey(1 << 30, vec![]);
        admit(&s, &Claim::Linear { bytes: 1 << 30 }).unwrap();
        let err = admit(
            &s,
            &Claim::Linear {
                bytes: (1 << 30) + 1,
            },
        )
        .unwrap_err();
        assert_eq!(err.kind(), Kind::ResourceExhausted);
        assert!(err.message().contains("1073741825 bytes wanted"), "{err}");
        assert!(err.message().contains("1073741824 bytes free"), "{err}");
    }

    #[test]
    fn thin_claims_count_every_promise_in_that_pool_only() {
        let s = survey(
            0,
            vec![
                pool(1 << 30),
                LvRow::fresh("a", 512 << 20, Some("pool"), vec![]),
                LvRow::fresh("b", 4 << 30, Some("other"), vec![]),
            ],
        );
        let claim = |bytes| Claim::Thin {
            pool: "pool",
            bytes,
            ratio: 1.0,
            zeroing_required: true,
        };
        admit(&s, &claim(512 << 20)).unwrap();
        let err = admit(&s, &claim((512 << 20) + 1)).unwrap_err();
        assert_eq!(err.kind(), Kind::ResourceExhausted);
        let msg = err.message();
        for figure in [
            "1073741824 bytes x ratio 1",
            "536870912 already",
            "536870912 left",
        ] {
            assert!(msg.contains(figure), "{figure:?} missing in {msg}");
        }
        let twice = Claim::Thin {
            pool: "pool",
            bytes: 1536 << 20,
            ratio: 2.0,
            zeroing_required: true,
        };
        admit(&s, &twice).unwrap();
        assert_eq!(thin_headroom(&s.lvs, "pool", 2.0).unwrap(), 1536 << 20);
        assert_eq!(thin_headroom(&s.lvs, "pool", -1.0).unwrap(), 0);
    }

    #[test]
    fn a_missing_pool_is_unavailable_not_full() {
        let s = survey(0, vec![LvRow::fresh("pool", 1 << 30, None, vec![])]);
        let claim = Claim::Thin {
            pool: "pool",
            bytes: 1,
            ratio: 1.0,
            zeroing_required: true,
        };
        assert_eq!(admit(&s, &claim).unwrap_err().kind(), Kind::Unavailable);
    }

    #[test]
    fn a_pool_that_does_not_zero_is_refused_unless_allowed() {
        let mut unzeroed = pool(1 << 30);
        unzeroed.attr = "twi-aot---".into();
        let s = survey(0, vec![unzeroed]);
        let claim = |zeroing_required| Claim::Thin {
            pool: "pool",
            bytes: 1,
            ratio: 1.0,
            zeroing_required,
        };
        let err = admit(&s, &claim(true)).unwrap_err();
        assert_eq!(err.kind(), Kind::FailedPrecondition, "{err}");
        assert!(
            err.message().contains("--allow-unzeroed-thin-pool"),
            "{err}"
        );
        admit(&s, &claim(false)).unwrap();
        assert!(zeroes_new_blocks(&pool(1)));
        assert_eq!(pool_fault(&pool(1)), None);
        for (attr, fault) in [
            ("twi-aotzF-", "failed"),
            ("twi-aotzM-", "metadata read-only"),
            ("twi-aotzD-", "out of data space"),
        ] {
            let mut row = pool(1);
            row.attr = attr.into();
            assert_eq!(pool_fault(&row), Some(fault), "{attr}");
            assert_eq!(pool_free(&row), 0);
        }
    }

    #[test]
    fn a_full_pool_takes_no_claim_and_has_nothing_free() {
        let mut full = pool(1 << 30);
        full.data_percent = Some(100.0);
        assert!(pool_condition(&full).unwrap().contains("full"));
        assert_eq!(pool_free(&full), 0);
        let s = survey(0, vec![full]);
        let claim = Claim::Thin {
            pool: "pool",
            bytes: 1,
            ratio: 10.0,
            zeroing_required: true,
        };
        let err = admit(&s, &claim).unwrap_err();
        assert_eq!(err.kind(), Kind::ResourceExhausted, "{err}");
        let mut half = pool(1 << 30);
        half.data_percent = Some(50.0);
        assert_eq!(pool_condition(&half), None);
        assert_eq!(pool_free(&half), 512 << 20);
        assert!(!zeroes_new_blocks(&LvRow::fresh("short", 1, None, vec![])));
    }
}
