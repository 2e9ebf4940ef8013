//! Which volumes startup reconciliation has not restored yet, so the controller can serve while
//! it runs: Probe answers ready=false until a pass has completed, and an RPC on a volume not yet
//! restored answers `Unavailable` (spec.md: the sidecars retry it) instead of racing the restore.
//!
//! Invariants: one shared record per controller (clones share it); it starts complete (nothing
//! to restore: a controller built without reconciling, as in tests), [`Restoration::expect`]
//! makes it wait for the first listing of the volume group, during which every RPC naming a
//! volume is refused, CreateVolume's too (which volumes exist is not known yet); the listing
//! fixes the set to
//! restore once, and volumes created afterwards are never in it; a volume leaves the set only
//! after its restore attempt released its guard; the record is complete only when a whole pass
//! succeeded (a failed pass leaves the volumes it could not settle in the set, for the retry).

use csi_common::{Error, Result};
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

#[derive(Debug, Default)]
enum Phase {
    /// Nothing (left) to restore.
    #[default]
    Complete,
    /// Reconciliation has not listed the volume group yet.
    Listing,
    /// These volumes (of `total`) are not restored yet.
    Restoring {
        pending: HashSet<String>,
        total: usize,
    },
}

/// The shared record of the volumes startup reconciliation still has to restore.
#[derive(Debug, Clone, Default)]
pub struct Restoration {
    phase: Arc<Mutex<Phase>>,
}

impl Restoration {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A record that waits for reconciliation: nothing is served on existing volumes until
    /// [`Restoration::listed`].
    pub fn expect(&self) {
        *self.phase() = Phase::Listing;
    }

    /// Reconciliation listed these volumes: each stays unavailable until [`Restoration::restored`].
    /// Only the first listing counts (a retried pass keeps what is left of it).
    pub fn listed<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut phase = self.phase();
        if matches!(*phase, Phase::Listing) {
            let pending: HashSet<String> = ids.into_iter().map(str::to_string).collect();
            let total = pending.len();
            *phase = Phase::Restoring { pending, total };
        }
    }

    /// The volume `id` is restored (or its restore failed in a way RPCs may now handle).
    pub fn restored(&self, id: &str) {
        if let Phase::Restoring { pending, .. } = &mut *self.phase() {
            pending.remove(id);
        }
    }

    /// A whole reconciliation pass succeeded.
    pub fn complete(&self) {
        *self.phase() = Phase::Complete;
    }

    /// Whether `id` may be served now: `Unavailable` while reconciliation has not restored it
    /// (an empty id is left to the RPC to refuse).
    pub fn check(&self, id: &str) -> Result<()> {
        match &*self.phase() {
            _ if id.is_empty() => Ok(()),
            Phase::Complete => Ok(()),
            Phase::Restoring { pending, .. } if !pending.contains(id) => Ok(()),
            Phase::Listing => Err(Error::unavailable(format!(
                "volume {id}: the controller is starting and has not read its volume group yet; \
                 retry shortly"
            ))),
            Phase::Restoring { pending, total } => Err(Error::unavailable(format!(
                "volume {id} is not restored yet: startup reconciliation is rebuilding LIO \
                 ({} of {total} volumes left); retry shortly",
                pending.len()
            ))),
        }
    }

    /// Whether answers about every volume (ListVolumes) may be given now.
    pub fn check_all(&self) -> Result<()> {
        self.ready().map_err(Error::unavailable)
    }

    /// `Ok` once reconciliation completed, else why not (Probe).
    pub fn ready(&self) -> std::result::Result<(), String> {
        match &*self.phase() {
            Phase::Complete => Ok(()),
            Phase::Listing => Err(
                "startup reconciliation has not read the volume group yet (retried every 30 s)"
                    .into(),
            ),
            Phase::Restoring { pending, total } => Err(format!(
                "startup reconciliation is restoring LIO exports: {} of {total} volumes left",
                pending.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::Kind;

    #[test]
    fn volumes_are_unavailable_until_restored_and_new_ones_are_served() {
        let r = Restoration::default();
        r.check("csi-a").unwrap();
        r.ready().unwrap();
        r.expect();
        assert_eq!(r.check("csi-a").unwrap_err().kind(), Kind::Unavailable);
        assert!(r.ready().is_err());
        r.listed(["csi-a", "csi-b"]);
        let err = r.check("csi-a").unwrap_err();
        assert_eq!(err.kind(), Kind::Unavailable);
        assert!(err.message().contains("2 of 2"), "{err}");
        r.check("csi-new").expect("created after the listing");
        r.restored("csi-a");
        r.check("csi-a").unwrap();
        r.listed(["csi-a", "csi-b", "csi-new"]);
        r.check("csi-new")
            .expect("a retried pass does not widen the set");
        assert_eq!(r.check_all().unwrap_err().kind(), Kind::Unavailable);
        assert!(r.ready().unwrap_err().contains("1 of 2"));
        r.complete();
        r.check("csi-b").unwrap();
        r.check_all().unwrap();
        r.ready().unwrap();
    }
}
