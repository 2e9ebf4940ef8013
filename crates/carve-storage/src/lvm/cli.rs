//! [`LvmCli`]: the [`Lvm`] trait over the real LVM tools, one per-VG queue for every mutation
//! and (with [`LvmCli::with_ledger`]) the VG's figures kept in memory; the module documentation
//! of [`super`] states its invariants.

use super::{
    Allocation, Change, Claim, Ledger, LvRow, Lvm, SnapshotUse, Survey, VgRow, Within, argv,
    pool_status, report, space,
};
use csi_common::{
    Error, Result,
    command::{BoxFuture, Cmd, CommandRunner, Output},
    ids::LvName,
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tracing::info;

/// [`Lvm`] over the real `lvs`, `vgs`, `lvcreate`, `lvremove` and `lvchange`.
#[derive(Debug)]
pub struct LvmCli {
    pub(super) runner: Arc<dyn CommandRunner>,
    pub(super) vg: String,
    pub(super) timeout: Duration,
    pub(super) queue: tokio::sync::Mutex<()>,
    pub(super) generation: AtomicU64,
    pub(super) wipe_timeout: Duration,
    pub(super) ledger: Option<std::sync::Mutex<Ledger>>,
    pub(super) pool_max_age: Duration,
    /// `--config` given to one LVM change in [`ARCHIVE_TRIM_EVERY`] (see
    /// [`LvmCli::with_archive_keep`]).
    pub(super) config: Option<String>,
    /// LVM changes run so far, to pick the ones that carry `config`.
    pub(super) changes: AtomicU64,
}

/// One LVM change in this many carries the archive retention (`--config`), the first one
/// included. Given `--config`, LVM reloads its whole configuration before the command
/// (`refresh_toolcontext`, LVM 2.03.16 `tools/lvmcmdline.c`): about 40-50 ms per `lvcreate`
/// or `lvchange` in the lab guest (docs/benchmarks.md, section 1), which a trim every 16
/// changes does not need.
pub const ARCHIVE_TRIM_EVERY: u64 = 16;

/// How long zeroing one quarantined LV may take unless [`LvmCli::with_wipe_timeout`] says.
pub const DEFAULT_WIPE_TIMEOUT: Duration = Duration::from_hours(6);

impl LvmCli {
    /// LVM on `vg`, each command limited to `timeout`.
    pub fn new(runner: Arc<dyn CommandRunner>, vg: impl Into<String>, timeout: Duration) -> Self {
        Self {
            runner,
            vg: vg.into(),
            timeout,
            queue: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            wipe_timeout: DEFAULT_WIPE_TIMEOUT,
            ledger: None,
            pool_max_age: Duration::ZERO,
            config: None,
            changes: AtomicU64::new(0),
        }
    }

    /// The same, keeping about the `keep` newest copies of the VG's metadata in LVM's archive
    /// (`/etc/lvm/archive`, lvm.conf(5) `backup/retain_min` with `backup/retain_days = 0`,
    /// given as `--config` to the first LVM change and to every [`ARCHIVE_TRIM_EVERY`]th after
    /// it, each of which deletes every copy beyond the newest `keep`; the changes between
    /// follow the host's lvm.conf, whose default keeps copies for 30 days, so the archive holds
    /// about `keep + ARCHIVE_TRIM_EVERY - 1` copies at most: a carrying command that fails
    /// trims nothing, and the next one does; reads and activations are not counted); 0 leaves
    /// the host's lvm.conf in charge.
    ///
    /// LVM archives the whole metadata before every change and, by default, keeps every copy
    /// younger than 30 days. Every metadata change then lists the archive directory, so each
    /// LVM command grows slower with the number of copies kept: in the lab guest `lvcreate` took
    /// about twice as long with 4,000 copies as with 30. Carve makes one change per
    /// CreateVolume, ControllerPublish, ControllerUnpublish and DeleteVolume, so a busy volume
    /// group reaches that in days (and at 2,000 volumes each copy is about 1 MiB).
    pub fn with_archive_keep(mut self, keep: u32) -> Self {
        self.config = (keep > 0).then(|| format!("backup{{retain_min={keep} retain_days=0}}"));
        self
    }

    /// The same, admitting thin claims on the ledger's thin-pool row while it is younger than
    /// `max_age` (kept young by [`Lvm::refresh_pool`]); an older row is read again at admission.
    /// The default, zero, reads the pool at every thin admission.
    pub fn with_pool_max_age(mut self, max_age: Duration) -> Self {
        self.pool_max_age = max_age;
        self
    }

    /// The ledger's row of the thin pool `name` is younger than the limit.
    fn pool_fresh(&self, name: &str) -> bool {
        self.ledger(|l| l.pool_age(name))
            .flatten()
            .is_some_and(|age| age < self.pool_max_age)
    }

    /// The same, keeping the VG's figures in a [`Ledger`] (seeded by the first
    /// [`Lvm::resync`] or admission), so reads and admission run no LVM process.
    pub fn with_ledger(mut self) -> Self {
        self.ledger = Some(std::sync::Mutex::new(Ledger::default()));
        self
    }

    /// Runs `f` on the ledger, if this LVM keeps one.
    fn ledger<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> Option<T> {
        let ledger = self.ledger.as_ref()?;
        let mut guard = ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut guard))
    }

    /// A copy of the ledger's record, if it holds one.
    pub(super) fn recorded(&self) -> Option<Survey> {
        self.ledger(|l| l.current().cloned())
            .flatten()
            .map(|mut s| {
                s.generation = self.generation.load(Ordering::SeqCst);
                s
            })
    }

    /// Reads the thin pool `name` into the ledger and answers the record; the caller holds the
    /// queue. A pool's zeroing flag, faults and usage change outside the controller (by hand,
    /// or with every write), and a thin claim must never be admitted into a pool seen stopped
    /// zeroing or full, so they are read by [`Lvm::refresh_pool`] and, when that row is older
    /// than [`LvmCli::with_pool_max_age`], at the thin admission itself: from device-mapper
    /// when the ledger holds the pool's row ([`LvmCli::pool_from_dm`]), else one `lvs vg/pool`.
    pub(super) async fn pool_in_queue(&self, name: &str) -> Result<Survey> {
        if self.pool_from_dm(name).await
            && let Some(recorded) = self.recorded()
        {
            return Ok(recorded);
        }
        self.pool_from_lvm_in_queue(name).await
    }

    /// Reads the thin pool `name` from LVM (one `lvs vg/pool`) into the ledger and answers the
    /// record, seeding it when the ledger had to forget it; the caller holds the queue.
    async fn pool_from_lvm_in_queue(&self, name: &str) -> Result<Survey> {
        let row = self.pool(name).await?;
        self.ledger(|l| l.pool_read(name, row));
        match self.recorded() {
            Some(recorded) => Ok(recorded),
            None => self.seed_in_queue().await,
        }
    }

    /// Rewrites the ledger's row of the thin pool `name` with what device-mapper says of it now
    /// ([`pool_status`]: `dmsetup table` and `dmsetup status`, no VG lock, no metadata parse,
    /// so callers need not hold the queue). `false`, with nothing changed, when the ledger holds
    /// no row of that pool or the kernel's lines cannot be read or parsed (the pool inactive,
    /// no `dmsetup`): the caller then reads LVM.
    pub(super) async fn pool_from_dm(&self, name: &str) -> bool {
        let known = self.ledger(|l| {
            l.current()
                .is_some_and(|s| s.lvs.iter().any(|r| r.name == name && r.is_thin_pool()))
        });
        if known != Some(true) {
            return false;
        }
        let parsed = pool_status::read(&*self.runner, &self.vg, name, self.timeout).await;
        if let Some(parsed) = parsed {
            return self
                .ledger(|l| l.pool_status_read(name, &parsed))
                .unwrap_or(false);
        }
        tracing::debug!(
            vg = %self.vg,
            pool = name,
            "thin pool not readable from device-mapper; reading it from LVM"
        );
        false
    }

    /// Reads a survey and seeds the ledger with it; the caller holds the queue.
    pub(super) async fn seed_in_queue(&self) -> Result<Survey> {
        let survey = self.read_survey().await?;
        self.ledger(|l| l.seed(survey.clone()));
        Ok(self.recorded().unwrap_or(survey))
    }

    /// The same, with zeroing a quarantined LV limited to `timeout`.
    pub fn with_wipe_timeout(mut self, timeout: Duration) -> Self {
        self.wipe_timeout = timeout;
        self
    }

    pub(super) async fn run(&self, cmd: Cmd) -> Result<Output> {
        let cmd = match &self.config {
            Some(config)
                if argv::changes_metadata(&cmd)
                    && self
                        .changes
                        .fetch_add(1, Ordering::Relaxed)
                        .is_multiple_of(ARCHIVE_TRIM_EVERY) =>
            {
                cmd.prepend_args(["--config", config.as_str()])
            }
            _ => cmd,
        };
        Ok(self.runner.run(&cmd).await?)
    }

    pub(super) async fn mutate(&self, cmd: Cmd, change: Change<'_>) -> Result<Output> {
        self.mutate_within(cmd, None, change).await
    }

    /// Runs `cmd` in the queue, after admitting `within` (if any) against current figures,
    /// then records `change` in the ledger (or forgets it when the command did not succeed).
    pub(super) async fn mutate_within(
        &self,
        cmd: Cmd,
        within: Option<Within<'_>>,
        change: Change<'_>,
    ) -> Result<Output> {
        let _turn = self.queue.lock().await;
        if let Some(within) = within {
            let current = self.generation.load(Ordering::SeqCst);
            let fresh;
            let figures = match (self.ledger.is_some(), within.seen) {
                (true, _) => {
                    fresh = match self.recorded() {
                        Some(recorded) => match within.claim {
                            Claim::Thin { pool, .. } if !self.pool_fresh(pool) => {
                                self.pool_in_queue(pool).await?
                            }
                            _ => recorded,
                        },
                        None => self.seed_in_queue().await?,
                    };
                    &fresh
                }
                (false, Some(seen)) if seen.generation == current => seen,
                _ => {
                    fresh = self.read_survey().await?;
                    &fresh
                }
            };
            space::admit(figures, &within.claim)?;
        }
        let out = self.run(cmd).await;
        // Counted whatever the outcome: a failed or timed-out command may still have changed
        // the VG, and a needless re-read is cheap next to a missed one.
        self.generation.fetch_add(1, Ordering::SeqCst);
        let succeeded = matches!(&out, Ok(o) if o.success());
        self.ledger(|l| {
            if succeeded {
                l.apply(&change);
            } else {
                l.forget();
            }
            // The gauges read the record in place: no copy of every LV per mutation.
            if let Some(survey) = l.current() {
                crate::gauges::record_values(survey);
            }
        });
        out
    }

    pub(super) async fn read_survey(&self) -> Result<Survey> {
        let generation = self.generation.load(Ordering::SeqCst);
        let out = self.run(argv::lvs_survey(&self.vg, self.timeout)).await?;
        if !out.success() {
            return Err(self.failed(out));
        }
        let lvs = report::parse_lvs(&out.stdout)?;
        let vg = match report::parse_vgs(&out.stdout)?
            .into_iter()
            .find(|row| row.name == self.vg)
        {
            Some(vg) => vg,
            None => self.vg().await?,
        };
        let survey = Survey {
            vg,
            lvs,
            generation,
        };
        crate::gauges::record(&survey);
        Ok(survey)
    }

    pub(super) fn vg_missing(&self, out: &Output) -> Option<Error> {
        let missing = out
            .stderr
            .contains(&format!("Volume group \"{}\" not found", self.vg))
            || out.stderr.contains("not found or inconsistent");
        missing.then(|| {
            Error::unavailable(format!(
                "volume group {:?} not found on this storage host: {}",
                self.vg,
                out.stderr.trim()
            ))
        })
    }

    /// A change LVM could not write because the VG's metadata area is full: `ResourceExhausted`
    /// with the remedy. LVM keeps the whole VG description (every LV with its tags, about half
    /// a KiB per Carve volume) in each PV's metadata area and needs room for two copies, so
    /// `pvcreate`'s default 1 MiB area holds about 1,000 volumes (lvm(8) `--metadatasize`;
    /// LVM 2.03 prints "VG … metadata on … (N bytes) exceeds maximum metadata size (M bytes)",
    /// LVM 2.02 "VG … metadata on … (N bytes) too large for circular buffer (…)", both from
    /// lib/format_text/format-text.c).
    pub(super) fn metadata_full(&self, out: &Output) -> Option<Error> {
        (out.stderr.contains("exceeds maximum metadata size")
            || out.stderr.contains("too large for circular buffer"))
        .then(|| {
                Error::resource_exhausted(format!(
                    "volume group {:?} has no room left in its LVM metadata area for this change \
                     (each volume and its tags take room there; give the VG's PVs a larger \
                     area: pvcreate --metadatasize, docs/kubernetes.md \"The LVM metadata area\"): {}",
                    self.vg,
                    out.stderr.trim()
                ))
            })
    }

    pub(super) fn failed(&self, out: Output) -> Error {
        match self.vg_missing(&out).or_else(|| self.metadata_full(&out)) {
            Some(e) => e,
            None => match out.ok() {
                Err(e) => Error::from(e),
                Ok(out) => Error::internal(format!("{}: unexpected success", out.command)),
            },
        }
    }

    async fn lvs(&self, cmd: Cmd) -> Result<Vec<LvRow>> {
        let out = self.run(cmd).await?;
        if !out.success() {
            return Err(self.failed(out));
        }
        report::parse_lvs(&out.stdout)
    }
}

impl Lvm for LvmCli {
    fn vg_name(&self) -> &str {
        &self.vg
    }

    fn vg(&self) -> BoxFuture<'_, Result<VgRow>> {
        Box::pin(async move {
            if let Some(vg) = self.ledger(|l| l.current().map(|s| s.vg.clone())).flatten() {
                return Ok(vg);
            }
            let out = self.run(argv::vgs(&self.vg, self.timeout)).await?;
            if !out.success() {
                return Err(self.failed(out));
            }
            report::parse_vgs(&out.stdout)?
                .into_iter()
                .find(|row| row.name == self.vg)
                .ok_or_else(|| Error::unavailable(format!("volume group {:?} not found", self.vg)))
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LvRow>>> {
        Box::pin(async move {
            match self.recorded() {
                Some(recorded) => Ok(recorded.lvs),
                None => self.lvs(argv::lvs(&self.vg, self.timeout)).await,
            }
        })
    }

    fn survey(&self) -> BoxFuture<'_, Result<Survey>> {
        Box::pin(async move {
            match self.recorded() {
                Some(recorded) => Ok(recorded),
                None => self.read_survey().await,
            }
        })
    }

    fn resync(&self) -> BoxFuture<'_, Result<Survey>> {
        Box::pin(async move {
            let _turn = self.queue.lock().await;
            self.seed_in_queue().await
        })
    }

    fn refresh_pool<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if self.ledger.is_none() || self.pool_from_dm(name).await {
                return Ok(());
            }
            // Not readable from device-mapper (or no record yet): LVM, in the queue, which
            // also seeds a record the ledger had to forget.
            let _turn = self.queue.lock().await;
            self.pool_from_lvm_in_queue(name).await.map(drop)
        })
    }

    fn pool<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LvRow>>> {
        Box::pin(async move {
            let cmd = argv::lvs(&format!("{}/{name}", self.vg), self.timeout);
            let out = self.run(cmd).await?;
            if !out.success() {
                if self.vg_missing(&out).is_none()
                    && out.stderr.contains("Failed to find logical volume")
                {
                    return Ok(None);
                }
                return Err(self.failed(out));
            }
            let rows = report::parse_lvs(&out.stdout)?;
            Ok(rows
                .into_iter()
                .find(|row| row.name == name && row.is_thin_pool()))
        })
    }

    fn get<'a>(&'a self, lv: &'a LvName) -> BoxFuture<'a, Result<Option<LvRow>>> {
        Box::pin(async move {
            if let Some(found) = self
                .ledger(|l| {
                    l.current()
                        .map(|s| s.lvs.iter().find(|row| row.name == lv.as_str()).cloned())
                })
                .flatten()
            {
                return Ok(found);
            }
            self.read(lv).await
        })
    }

    fn read<'a>(&'a self, lv: &'a LvName) -> BoxFuture<'a, Result<Option<LvRow>>> {
        Box::pin(async move {
            let out = self.run(argv::lvs_one(&self.vg, lv, self.timeout)).await?;
            if !out.success() {
                if self.vg_missing(&out).is_none()
                    && out.stderr.contains("Failed to find logical volume")
                {
                    return Ok(None);
                }
                return Err(self.failed(out));
            }
            let rows = report::parse_lvs(&out.stdout)?;
            Ok(rows.into_iter().find(|row| row.name == lv.as_str()))
        })
    }

    fn create<'a>(
        &'a self,
        lv: &'a LvName,
        size: u64,
        allocation: &'a Allocation,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.create_admitted(lv, size, allocation, tags, None))
    }

    fn create_within<'a>(
        &'a self,
        lv: &'a LvName,
        size: u64,
        allocation: &'a Allocation,
        tags: &'a [String],
        within: Within<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.create_admitted(lv, size, allocation, tags, Some(within)))
    }

    fn extend_within<'a>(
        &'a self,
        lv: &'a LvName,
        size: u64,
        within: Within<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.grow(lv, size, Some(within)))
    }

    fn snapshot_within<'a>(
        &'a self,
        origin: &'a LvName,
        lv: &'a LvName,
        usage: SnapshotUse,
        tags: &'a [String],
        within: Within<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.thin_snapshot(origin, lv, usage, tags, Some(within)))
    }

    fn quarantine<'a>(
        &'a self,
        lv: &'a LvName,
        stamp: u64,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(self.quarantine_lv(lv, stamp))
    }

    fn wipe<'a>(&'a self, row: &'a LvRow) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.wipe_lv(row, self.wipe_timeout))
    }

    fn remove<'a>(&'a self, lv: &'a LvName) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let out = self
                .mutate(
                    argv::lvremove(&self.vg, lv, self.timeout),
                    Change::Removed { lv: lv.as_str() },
                )
                .await?;
            if out.success() {
                info!(lv = %lv, vg = %self.vg, "removed logical volume");
                return Ok(true);
            }
            if out.stderr.contains("Failed to find logical volume") {
                return Ok(false);
            }
            Err(self.failed(out))
        })
    }

    fn set_tag<'a>(&'a self, lv: &'a LvName, tag: &'a str, add: bool) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let cmd = argv::lvchange_tag(&self.vg, lv, tag, add, self.timeout);
            let tags = [tag.to_string()];
            let (remove, added): (&[String], &[String]) =
                if add { (&[], &tags) } else { (&tags, &[]) };
            let change = Change::Tagged {
                lv: lv.as_str(),
                remove,
                add: added,
            };
            let out = self.mutate(cmd, change).await?;
            if out.success() {
                return Ok(());
            }
            Err(self.failed(out))
        })
    }

    fn activate<'a>(&'a self, lv: &'a LvName) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let out = self
                .mutate(
                    argv::lvchange_activate(&self.vg, lv, self.timeout),
                    Change::Activated { lv: lv.as_str() },
                )
                .await?;
            if out.success() {
                info!(lv = %lv, "activated logical volume");
                return Ok(());
            }
            Err(self.failed(out))
        })
    }

    fn snapshot<'a>(
        &'a self,
        origin: &'a LvName,
        lv: &'a LvName,
        usage: SnapshotUse,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.thin_snapshot(origin, lv, usage, tags, None))
    }

    fn extend<'a>(&'a self, lv: &'a LvName, size: u64) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.grow(lv, size, None))
    }

    fn retag<'a>(
        &'a self,
        lv: &'a LvName,
        remove: &'a [String],
        add: &'a [String],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.replace_tags(lv, remove, add))
    }
}
