//! The saveconfig writer: keeps saveconfig.json ([`super::saveconfig`]) current with LIO,
//! coalescing saves in a background task and writing at once where a stale file could grant
//! access that was revoked (ControllerUnpublish and shutdown: [`SaveHandle::flush`]).
//!
//! Invariants: the writer keeps the state it last wrote and rereads only what changed since:
//! the exports the controller changed ([`SaveHandle::request_volume`]) and the targets that
//! appeared in or disappeared from `iscsi/` (one directory listing per save), each with the
//! storage object its LUN 0 maps. So a save costs one listing, one read per changed export
//! ([`Lio::volume_state`]) and the file's serialisation, not a read of every export's
//! attributes, which took 19 s at 2,000 exports in the guest (docs/benchmarks.md). The whole
//! state is read on the first save, after a failed save, and on [`SaveHandle::request`]
//! (reconciliation, SIGHUP): that is how a hand edit inside an existing target, or to a
//! storage object no target maps, reaches the file.
//! Saves are serialized (one writer of the file at a time); a change made while a save runs
//! is written by the next one; a failed save leaves the handle dirty until one succeeds.

use super::{Lio, LioState, saveconfig};
use csi_common::{Error, Result, ids::Iqn};
use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tracing::{info, warn};

/// What the next save must read.
#[derive(Debug, Default)]
struct Pending {
    /// A change is not in the file yet (requested, or the last save failed).
    dirty: bool,
    /// Read the whole state.
    all: bool,
    /// Exports to read again: (target IQN, storage object name).
    volumes: BTreeSet<(String, String)>,
}

/// Requests coalesced saves from a background task, and immediate ones ([`SaveHandle::flush`]).
#[derive(Debug, Clone)]
pub struct SaveHandle {
    wake: Arc<tokio::sync::Notify>,
    lio: Arc<dyn Lio>,
    path: PathBuf,
    /// The state last written (none before the first save and after a failed one); held by
    /// the save in progress, which is what serializes saves.
    written: Arc<tokio::sync::Mutex<Option<LioState>>>,
    pending: Arc<Mutex<Pending>>,
}

impl SaveHandle {
    /// Starts the saver: after each request it waits `delay` (gathering more requests), then
    /// writes the file once. Must run inside a tokio runtime.
    pub fn spawn(lio: Arc<dyn Lio>, path: PathBuf, delay: Duration) -> Self {
        let handle = Self {
            wake: Arc::new(tokio::sync::Notify::new()),
            lio,
            path,
            written: Arc::default(),
            pending: Arc::default(),
        };
        let saver = handle.clone();
        tokio::spawn(async move {
            loop {
                saver.wake.notified().await;
                tokio::time::sleep(delay).await;
                if let Err(e) = saver.flush().await {
                    warn!(path = %saver.path.display(), error = %e, "cannot save LIO configuration");
                }
            }
        });
        handle
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a save soon that reads the whole LIO state (after changes to many exports, or
    /// to pick up hand edits).
    pub fn request(&self) {
        let mut pending = self.lock_pending();
        pending.dirty = true;
        pending.all = true;
        drop(pending);
        self.wake.notify_one();
    }

    /// Asks for a save soon after the export of one volume changed: its target `target` and
    /// its storage object `storage_object` (created, changed or removed) are read again.
    pub fn request_volume(&self, target: &Iqn, storage_object: &str) {
        let mut pending = self.lock_pending();
        pending.dirty = true;
        pending
            .volumes
            .insert((target.to_string(), storage_object.to_string()));
        drop(pending);
        self.wake.notify_one();
    }

    /// Whether a change may not be in the file yet (requested, or the last save failed).
    pub fn pending(&self) -> bool {
        self.lock_pending().dirty
    }

    /// Writes the file now (after any save in progress); the number of targets saved.
    ///
    /// # Errors
    /// LIO's state cannot be read or the file cannot be written; the change stays pending.
    pub async fn flush(&self) -> Result<usize> {
        let mut written = self.written.lock().await;
        // Taken before reading LIO: a change made during the save asks again.
        let work = std::mem::take(&mut *self.lock_pending());
        match self.save(written.take(), &work).await {
            Ok(state) => {
                let count = state.targets.len();
                *written = Some(state);
                info!(path = %self.path.display(), targets = count, "saved LIO configuration");
                Ok(count)
            }
            Err(e) => {
                let mut pending = self.lock_pending();
                pending.dirty = true;
                pending.all = true;
                Err(e)
            }
        }
    }

    /// Brings `last` (the state last written) up to date with what `work` names, or reads the
    /// whole state, then writes the file; the state written.
    async fn save(&self, last: Option<LioState>, work: &Pending) -> Result<LioState> {
        let refreshed = match last {
            Some(mut state) if !work.all => self
                .refresh(&mut state, &work.volumes)
                .await?
                .then_some(state),
            _ => None,
        };
        let state = if let Some(state) = refreshed {
            state
        } else {
            let state = self.lio.state().await?;
            if !state.other_hbas.is_empty() {
                warn!(hbas = ?state.other_hbas, "saveconfig holds block backstores only; others are not saved");
            }
            state
        };
        let path = self.path.clone();
        let (state, written) = tokio::task::spawn_blocking(move || {
            let written = saveconfig::write_atomic(&path, &saveconfig::document(&state));
            (state, written)
        })
        .await
        .map_err(|e| Error::internal(format!("saveconfig task failed: {e}")))?;
        written.map(|()| state)
    }

    /// Reads again the exports in `volumes` and the targets made or removed since `state` was
    /// read, into `state`; `false` if a target's name is not an IQN Carve can read by itself
    /// (the caller then reads everything).
    async fn refresh(
        &self,
        state: &mut LioState,
        volumes: &BTreeSet<(String, String)>,
    ) -> Result<bool> {
        let listed = self.lio.target_names().await?;
        let mut reread = volumes.clone();
        for gone in state
            .targets
            .iter()
            .filter(|t| listed.binary_search(&t.iqn).is_err())
        {
            // Removed behind the controller's back: its storage object may be gone too.
            let object = gone.lun0_object.clone().unwrap_or_default();
            reread.insert((gone.iqn.clone(), object));
        }
        for iqn in &listed {
            if state.target(iqn).is_none() {
                // Made behind the controller's back: the target and the object its LUN 0 maps.
                let Ok(target) = Iqn::parse(iqn) else {
                    return Ok(false);
                };
                let part = self.lio.volume_state(&target, "").await?;
                let object = part
                    .target(iqn)
                    .and_then(|t| t.lun0_object.clone())
                    .unwrap_or_default();
                reread.insert((iqn.clone(), object));
            }
        }
        for (iqn, object) in reread {
            let Ok(target) = Iqn::parse(&iqn) else {
                return Ok(false);
            };
            let part = self.lio.volume_state(&target, &object).await?;
            state.replace_volume(&iqn, &object, part);
        }
        Ok(true)
    }
}

#[cfg(test)]
#[path = "saver_tests.rs"]
mod tests;
