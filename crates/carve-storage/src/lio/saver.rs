//! The saveconfig writer: keeps saveconfig.json ([`super::saveconfig`]) current with LIO,
//! coalescing saves in a background task and writing at once where a stale file could grant
//! access that was revoked (ControllerUnpublish and shutdown: [`SaveHandle::sync`]).
//!
//! Invariants: the writer keeps the state it last wrote and rereads only what changed since:
//! the exports the controller changed or may have changed ([`SaveHandle::request_volume`],
//! which [`super::saved::SavedLio`] calls after every mutation, also one that failed half-way) and the targets that appeared in or disappeared from
//! `iscsi/` (one directory listing per save), each with the storage object its LUN 0 maps. So
//! a save costs one listing, one read per changed export ([`Lio::volume_state`]) and the file's
//! serialisation, not a read of every export's attributes, which took 19 s at 2,000 exports in
//! the guest (docs/benchmarks.md). The whole state is read on the first save and after a failed
//! save (unless a caller offered a whole read of its own that began after the last save
//! began), on [`SaveHandle::request`] (SIGHUP), and when a target made by hand
//! has a name Carve's [`Iqn`] cannot spell (capitals): that is how a hand edit inside an
//! existing target or storage object, or a target removed and made again by hand between two
//! saves, reaches the file; also when more than half the targets known changed (one whole read
//! costs less than that many reads of one export). A caller that read the whole state itself
//! can offer it as the first save's starting point ([`SaveHandle::request_since`]), and one
//! about to change many exports can hold the coalesced saves back ([`SaveHandle::hold`]).
//! Saves are serialized (one writer of the file at a time); a change
//! made while a save runs is written by the next one; [`SaveHandle::sync`] returns only once
//! every request made before it is in a file written by a successful save.

use super::{Lio, LioState, saveconfig};
use csi_common::{Error, Result, ids::Iqn};
use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tracing::{info, warn};

/// The requests, and what the next save must read.
#[derive(Debug, Default)]
struct Pending {
    /// Requests made so far.
    requested: u64,
    /// Requests the file holds: `requested` as the last successful save took it.
    saved: u64,
    /// Read the whole state.
    all: bool,
    /// Exports to read again: (target IQN, storage object name).
    volumes: BTreeSet<(String, String)>,
    /// Saves that have taken requests so far (successful or not).
    attempts: u64,
    /// A whole read offered by a caller ([`SaveHandle::request_since`]) that began after the
    /// last save took its requests (every save takes it, so it is never older than that).
    base: Option<LioState>,
}

/// When a caller's read of LIO's state began, as the saver counts its saves
/// ([`SaveHandle::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark(u64);

/// Requests coalesced saves from a background task, and immediate ones ([`SaveHandle::sync`]).
#[derive(Debug, Clone)]
pub struct SaveHandle {
    wake: Arc<tokio::sync::Notify>,
    lio: Arc<dyn Lio>,
    path: PathBuf,
    /// The state last written (none before the first save and after a failed one); held by
    /// the save in progress, which is what serializes saves.
    written: Arc<tokio::sync::Mutex<Option<LioState>>>,
    pending: Arc<Mutex<Pending>>,
    /// Read-held by each [`SaveHold`]; the background task takes it for writing before a
    /// coalesced save, so it waits until no hold is left.
    holds: Arc<tokio::sync::RwLock<()>>,
}

/// Holds the coalesced saves back while it lives ([`SaveHandle::hold`]); [`SaveHandle::sync`]
/// still writes at once, and a coalesced save already under way when the hold was taken
/// finishes.
#[derive(Debug)]
#[must_use = "the saves are held back only while the hold lives"]
pub struct SaveHold(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>);

impl SaveHandle {
    /// Starts the saver: after each request it waits `delay` (gathering more requests), then
    /// writes the file once if a request is not in it yet. Must run inside a tokio runtime.
    pub fn spawn(lio: Arc<dyn Lio>, path: PathBuf, delay: Duration) -> Self {
        let handle = Self {
            wake: Arc::new(tokio::sync::Notify::new()),
            lio,
            path,
            written: Arc::default(),
            pending: Arc::default(),
            holds: Arc::default(),
        };
        let saver = handle.clone();
        tokio::spawn(async move {
            loop {
                saver.wake.notified().await;
                tokio::time::sleep(delay).await;
                drop(saver.holds.write().await);
                if let Err(e) = saver.sync().await {
                    warn!(path = %saver.path.display(), error = %e, "cannot save LIO configuration");
                }
            }
        });
        handle
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the coalesced saves back until the hold is dropped: a caller about to change many
    /// exports (startup reconciliation) gets one save at its end instead of saves that each
    /// reread what changed so far, beside its own work, and a file that keeps what it held
    /// until then. A save that [`SaveHandle::sync`] asks for (ControllerUnpublish, shutdown)
    /// is still written at once.
    pub async fn hold(&self) -> SaveHold {
        SaveHold(Arc::clone(&self.holds).read_owned().await)
    }

    /// Marks the start of a read of the whole LIO state that the caller may offer to
    /// [`SaveHandle::request_since`].
    pub fn mark(&self) -> ReadMark {
        ReadMark(self.lock_pending().attempts)
    }

    /// Asks for a save soon, offering `state`, a whole read of LIO's state that began at
    /// `mark`, as what that save brings up to date: it then reads again only the exports
    /// changed since (each mutation through [`super::saved::SavedLio`] asks for its own) and
    /// the targets made or removed since, not the whole state. Offered only while no save has
    /// taken requests since `mark`, so every change made after the read began is still pending
    /// (one a later save took, and maybe wrote, could be older than a failed save's loss of
    /// `written`); otherwise the save starts from what it would have. A hand edit inside an
    /// existing target made after the read reaches the file on the next whole read, as with
    /// any incremental save.
    pub fn request_since(&self, mark: ReadMark, state: LioState) {
        let mut pending = self.lock_pending();
        if pending.attempts == mark.0 {
            pending.base = Some(state);
        }
        pending.requested += 1;
        drop(pending);
        self.wake.notify_one();
    }

    /// Asks for a save soon that reads the whole LIO state (after changes to many exports, or
    /// to pick up hand edits).
    pub fn request(&self) {
        let mut pending = self.lock_pending();
        pending.requested += 1;
        pending.all = true;
        drop(pending);
        self.wake.notify_one();
    }

    /// Asks for a save soon after the export of one volume changed, or may have (a call that
    /// failed half-way): its target `target` and its storage object `storage_object` are read
    /// again.
    pub fn request_volume(&self, target: &Iqn, storage_object: &str) {
        let mut pending = self.lock_pending();
        pending.requested += 1;
        pending
            .volumes
            .insert((target.to_string(), storage_object.to_string()));
        drop(pending);
        self.wake.notify_one();
    }

    /// Whether a request is not in the file yet (not saved, or the last save failed).
    #[cfg(test)]
    fn pending(&self) -> bool {
        let pending = self.lock_pending();
        pending.requested > pending.saved
    }

    /// Returns once every request made before the call is in the file: after the save in
    /// progress, if that one took them and succeeded; otherwise after a save of its own.
    ///
    /// # Errors
    /// LIO's state cannot be read or the file cannot be written; the requests stay pending.
    pub async fn sync(&self) -> Result<()> {
        let wanted = self.lock_pending().requested;
        let mut written = self.written.lock().await;
        if self.lock_pending().saved >= wanted {
            return Ok(());
        }
        self.save_locked(&mut written).await
    }

    async fn save_locked(&self, written: &mut Option<LioState>) -> Result<()> {
        let started = std::time::Instant::now();
        // Taken before reading LIO: a change made during the save asks again.
        let (through, all, volumes, base) = {
            let mut pending = self.lock_pending();
            pending.attempts += 1;
            let all = std::mem::take(&mut pending.all);
            let volumes = std::mem::take(&mut pending.volumes);
            (pending.requested, all, volumes, pending.base.take())
        };
        // A whole read offered since the last save began is at least as new as `written`.
        // `written` is emptied either way: a failed save (which loses what it took) leaves it
        // empty, so the next one reads the whole state.
        let previous = written.take();
        let last = base.or(previous);
        let (state, whole) = self.save(last, all, &volumes).await?;
        let count = state.targets.len();
        *written = Some(state);
        let mut pending = self.lock_pending();
        pending.saved = pending.saved.max(through);
        drop(pending);
        info!(path = %self.path.display(), targets = count, whole, changed = volumes.len(),
            ms = started.elapsed().as_millis(), "saved LIO configuration");
        Ok(())
    }

    /// Brings `last` (the state last written) up to date with `volumes` and the targets made
    /// or removed since, or reads the whole state (`all`, no `last`, most targets changed, or
    /// a name Carve cannot read by itself), then writes the file; the state written, and
    /// whether it was read whole.
    async fn save(
        &self,
        last: Option<LioState>,
        all: bool,
        volumes: &BTreeSet<(String, String)>,
    ) -> Result<(LioState, bool)> {
        // Rereading most exports one by one costs more than one whole read (after a wipe,
        // every restored export is a change).
        let changed: BTreeSet<&str> = volumes.iter().map(|(iqn, _)| iqn.as_str()).collect();
        let refreshed = match last {
            Some(mut state) if !all && changed.len() * 2 <= state.targets.len().max(1) => {
                self.refresh(&mut state, volumes).await?.then_some(state)
            }
            _ => None,
        };
        let whole = refreshed.is_none();
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
        written.map(|()| (state, whole))
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
            let known = state
                .targets
                .binary_search_by(|t| t.iqn.as_str().cmp(iqn))
                .is_ok();
            if !known {
                // Made behind the controller's back: the target and the object its LUN 0 maps.
                let Some(target) = carve_name(iqn) else {
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
            let Some(target) = carve_name(&iqn) else {
                return Ok(false);
            };
            let part = self.lio.volume_state(&target, &object).await?;
            state.replace_volume(&iqn, &object, part);
        }
        Ok(true)
    }
}

/// `name` as an [`Iqn`] that names the same configfs directory, if it is one: [`Iqn::parse`]
/// lowercases, and a target made by hand may have capitals.
fn carve_name(name: &str) -> Option<Iqn> {
    Iqn::parse(name).ok().filter(|iqn| iqn.as_str() == name)
}

#[cfg(test)]
#[path = "saver_tests.rs"]
mod tests;
