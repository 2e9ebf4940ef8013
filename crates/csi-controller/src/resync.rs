//! Resync of the ledger (the in-memory record of the volume group, [`crate::lvm::ledger`]) with
//! LVM: every `--lvm-resync-interval` and at once on SIGHUP, so an operator's hand edit (tags,
//! an LV created or removed by hand) and the thin pool's usage reach the controller; and the
//! thin pool's own row every `--thin-pool-refresh-interval` ([`spawn_pool_refresh`]), so thin
//! admissions run no LVM process of their own. The LIO
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

/// Resyncs `lvm` (and `lio`'s cache) every `interval` and on each SIGHUP (must run inside a
/// tokio runtime).
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
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                _ = tick.tick() => "timer",
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
            match lvm.resync().await {
                Ok(survey) => tracing::debug!(
                    vg = %lvm.vg_name(),
                    lvs = survey.lvs.len(),
                    why,
                    "resynced the volume-group ledger with LVM"
                ),
                Err(error) => {
                    tracing::warn!(%error, vg = %lvm.vg_name(), why, "ledger resync failed");
                }
            }
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
