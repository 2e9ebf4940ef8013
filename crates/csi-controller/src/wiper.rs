//! The background wiper: zeroes and removes the linear LVs DeleteVolume quarantined (see
//! [`crate::lvm::quarantine`]), so DeleteVolume answers at once and no extent is handed to the
//! next LV with the previous tenant's bytes.
//!
//! Invariants: one wiper per volume group, one LV at a time (zeroing is bandwidth-bound; the
//! per-VG queue is not held meanwhile); `main` asks for the first pass at start, so a restart
//! resumes every unfinished wipe (the quarantined LVs are the whole state); a pass that fails for one LV
//! carries on with the others and is retried after `retry`; DeleteVolume wakes the wiper.

use crate::lvm::{Lvm, quarantine};
use csi_common::Result;
use std::{sync::Arc, time::Duration};
use tokio::sync::Notify;
use tracing::{info, warn};

/// Wakes the wiper; cheap to clone.
#[derive(Debug, Clone)]
pub struct WipeHandle {
    notify: Arc<Notify>,
}

impl WipeHandle {
    /// Starts the wiper of `lvm`'s volume group (must run inside a tokio runtime). It runs no
    /// command until the first [`WipeHandle::request`]: the controller's `main` asks for the
    /// first pass at start (so building the routes, as the in-process tests do, runs no tool).
    pub fn spawn(lvm: Arc<dyn Lvm>, retry: Duration) -> Self {
        let notify = Arc::new(Notify::new());
        let wake = Arc::clone(&notify);
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                // Passes until one wipes everything, a failed one retried after `retry` (or
                // sooner, when DeleteVolume quarantines another LV).
                loop {
                    let clean = match wipe_all(lvm.as_ref()).await {
                        Ok(failed) => failed == 0,
                        Err(e) => {
                            warn!(error = %e, "cannot list quarantined logical volumes");
                            false
                        }
                    };
                    if clean {
                        break;
                    }
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep(retry) => {}
                    }
                }
            }
        });
        Self { notify }
    }

    /// Asks for a pass (one is queued if a pass is running).
    pub fn request(&self) {
        self.notify.notify_one();
    }
}

/// One pass: wipes every quarantined LV of the VG; returns how many failed (each logged).
pub async fn wipe_all(lvm: &dyn Lvm) -> Result<usize> {
    let rows: Vec<_> = lvm
        .list()
        .await?
        .into_iter()
        .filter(quarantine::is_quarantined)
        .collect();
    if !rows.is_empty() {
        info!(count = rows.len(), "wiping quarantined logical volumes");
    }
    let mut failed = 0;
    for row in &rows {
        if let Err(e) = lvm.wipe(row).await {
            warn!(lv = %row.name, error = %e, "wipe failed; its space stays reserved until a retry succeeds");
            failed += 1;
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        lvm::{quarantine, tags::VolumeRecord},
        ops::testing::{FakeHost, VG, lv_row},
    };
    use csi_common::command::Expectation;

    use csi_common::testing::argv as argv_of;

    #[tokio::test]
    async fn zeroes_then_removes_quarantined_lvs_only_and_carries_on_after_a_failure() {
        let host = FakeHost::new();
        let tags = VolumeRecord {
            name: "v".into(),
            ..Default::default()
        }
        .creation_tags();
        let one = format!("carve-wipe-csi-a-1-{}", "0".repeat(16));
        let two = format!("carve-wipe-csi-b-1-{}", "1".repeat(16));
        let untagged = format!("carve-wipe-csi-c-1-{}", "2".repeat(16));
        let mut inactive = lv_row(&two, 8 << 20, None, &tags);
        inactive.attr = "-wi-------".into();
        host.expect_lvs(&[
            lv_row("csi-live-1", 8 << 20, None, &tags),
            lv_row(&one, 8 << 20, None, &tags),
            inactive,
            lv_row(&untagged, 8 << 20, None, &[]),
        ]);
        let t = Duration::from_secs(5);
        // The first fails to zero: never removed.
        host.expect(
            Expectation::new(argv_of(&quarantine::blkdiscard_zeroout(
                VG,
                &one,
                crate::lvm::DEFAULT_WIPE_TIMEOUT,
            )))
            .fails(1, "blkdiscard: Operation not supported\n"),
        );
        // The second is activated, zeroed, removed.
        host.expect(Expectation::new(vec![
            "lvchange".to_string(),
            "--activate".into(),
            "y".into(),
            "--ignoreactivationskip".into(),
            "--".into(),
            format!("{VG}/{two}"),
        ]));
        host.expect(Expectation::new(argv_of(&quarantine::blkdiscard_zeroout(
            VG,
            &two,
            crate::lvm::DEFAULT_WIPE_TIMEOUT,
        ))));
        host.expect(Expectation::new(argv_of(&crate::lvm::argv::lvremove(
            VG, &two, t,
        ))));
        let lvm = host.ctx.lvm().unwrap().clone();
        assert_eq!(wipe_all(lvm.as_ref()).await.unwrap(), 1);
        host.finish();
    }
}
