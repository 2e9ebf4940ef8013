//! Resync of the ledger (the in-memory record of the volume group, [`crate::lvm::ledger`]) with
//! LVM: every `--lvm-resync-interval` (or 20 times as long as the last resync took, when that is
//! longer: [`RESYNC_SPACING`]) and at once on SIGHUP, so an operator's hand edit (tags,
//! an LV created or removed by hand) and the thin pool's usage reach the controller; and the
//! thin pool's own row every `--thin-pool-refresh-interval` ([`spawn_pool_refresh`], from
//! device-mapper: no VG lock), so thin admissions run no LVM process of their own. The LIO
//! backend's cache (the configfs HBA index) is dropped at the same moments, so a storage object
//! made or removed by hand is seen too; on SIGHUP the saveconfig writer also reads the whole
//! LIO state once (its saves otherwise read only what changed, see [`SaveHandle`]).
//!
//! Invariants: a resync reads LVM inside the per-VG queue and replaces the whole record (see
//! [`crate::lvm::Lvm::resync`]), so it never races a mutation; it also refreshes the storage
//! gauges; a failed resync is logged and the record in place stays in use (Probe and the RPCs
//! say why LVM is unavailable).

use crate::{
    lio::{Lio, saver::SaveHandle},
    lvm::Lvm,
};
use std::{sync::Arc, time::Duration};
use tokio::signal::unix::{SignalKind, signal};

/// A timed resync waits at least this many times as long as the last one took: a resync holds
/// the per-VG queue, and LVM's VG lock, while LVM reports every LV, which takes longer the more
/// LVs the VG holds (17 s for 2,000 under TCG, docs/benchmarks.md section 2), and every change
/// of the VG waits for it. So timed resyncs hold the VG at most about 1/20 of the time, whatever
/// `--lvm-resync-interval` and the VG's size; SIGHUP still resyncs at once.
pub const RESYNC_SPACING: u32 = 20;

/// How long the timer waits after a resync that took `took`: `interval`, or
/// [`RESYNC_SPACING`] times `took` when that is longer.
pub fn next_wait(interval: Duration, took: Duration) -> Duration {
    interval.max(took.saturating_mul(RESYNC_SPACING))
}

/// `wait` from now (a year when that overflows the clock: an interval meant as "never").
fn later(wait: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_hours(365 * 24))
}

/// Resyncs `lvm` (and `lio`'s cache) every `interval` (spaced by [`next_wait`]) and on each
/// SIGHUP (must run inside a tokio runtime).
pub fn spawn(
    lvm: Arc<dyn Lvm>,
    lio: Arc<dyn Lio>,
    saver: Option<SaveHandle>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(error) => {
                tracing::warn!(%error, "no SIGHUP handler: the ledger resyncs on its timer only");
                None
            }
        };
        let mut next = later(interval);
        loop {
            let why = tokio::select! {
                () = tokio::time::sleep_until(next) => "timer",
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => "SIGHUP",
            };
            lio.resync();
            if let (Some(saver), "SIGHUP") = (&saver, why) {
                // An operator's hand edit inside a target reaches saveconfig.json this way.
                saver.request();
            }
            let started = tokio::time::Instant::now();
            let result = lvm.resync().await;
            let took = started.elapsed();
            let wait = next_wait(interval, took);
            match result {
                Ok(survey) => tracing::debug!(
                    vg = %lvm.vg_name(),
                    lvs = survey.lvs.len(),
                    why,
                    took_ms = took.as_millis(),
                    next_in_s = wait.as_secs(),
                    "resynced the volume-group ledger with LVM"
                ),
                Err(error) => {
                    tracing::warn!(%error, vg = %lvm.vg_name(), why, "ledger resync failed");
                }
            }
            next = later(wait);
        }
    })
}

/// Reads the thin pool `pool` into `lvm`'s ledger every `interval` (must run inside a tokio
/// runtime); a failed read is logged, and admissions read the pool themselves once the last
/// good reading is too old (see [`crate::lvm::LvmCli::with_pool_max_age`]).
pub fn spawn_pool_refresh(
    lvm: Arc<dyn Lvm>,
    pool: String,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = lvm.refresh_pool(&pool).await {
                tracing::warn!(%error, vg = %lvm.vg_name(), pool, "thin pool refresh failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_resync_spaces_the_next_one_by_twenty_times_its_duration() {
        let minute = Duration::from_mins(1);
        assert_eq!(next_wait(minute, Duration::from_millis(200)), minute);
        assert_eq!(next_wait(minute, Duration::from_secs(3)), minute);
        assert_eq!(
            next_wait(minute, Duration::from_secs(17)),
            Duration::from_secs(340)
        );
        assert_eq!(next_wait(minute, Duration::MAX), Duration::MAX);
        assert!(later(Duration::MAX) > tokio::time::Instant::now());
    }
}
