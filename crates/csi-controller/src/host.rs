//! The storage host runtime: one host's LVM and LIO backends, the operations context over them,
//! the saver, the wiper, Probe's readiness, and what runs beside a service from the start
//! (ledger seeding and resync, unfinished wipes, reconciliation of LIO with LVM).
//!
//! Built once from [`StorageHostArgs`] by [`build`], the same way for both binaries that drive a
//! host: `csi-controller` on its own host ([`crate::server::build`]) and `carve-agent` for a
//! remote controller. So one code path drives a storage host either way.
//!
//! Invariants: the host builds without its volume group (Probe says not ready, RPCs say why);
//! Probe and the volume RPCs share one [`Restoration`] record with startup reconciliation; a bad
//! portal, IQN prefix or topology is a start-up error; missing executables are named in an error
//! log line at start; [`StorageHost::start`] reads saveconfig.json's CHAP credentials before
//! anything can save the file again.

use crate::{
    config::{LioBackend, StorageHostArgs},
    lio::{
        Lio, configfs::ConfigfsLio, saveconfig, saved::SavedLio, saver::SaveHandle,
        targetcli::TargetcliLio,
    },
    lvm::{Lvm, LvmCli, LvmShell},
    ops::{Ctx, Settings},
    readiness::ControllerReadiness,
    reconcile,
    restoration::Restoration,
    resync, tools,
    wiper::WipeHandle,
};
use csi_common::{
    Error, Result, command::CommandRunner, contract::validate_portal, guard::OperationGuards,
    ids::Iqn, topology::Segments,
};
use std::{path::PathBuf, sync::Arc, time::Duration};

/// How long the saver gathers requests before writing saveconfig.json.
pub const SAVE_DELAY: Duration = Duration::from_secs(2);
/// How long the wiper waits before retrying a failed wipe.
pub const WIPE_RETRY: Duration = Duration::from_mins(1);
/// A thin-pool reading stays good for admission this many `--thin-pool-refresh-interval`s (one
/// missed refresh is no reason for a request to read LVM; a stopped refresher is).
pub const POOL_MAX_AGE_INTERVALS: u32 = 3;
/// How many copies of the VG metadata LVM's archive keeps unless `--lvm-archive-keep` says
/// (see [`crate::lvm::LvmCli::with_archive_keep`]).
pub const DEFAULT_LVM_ARCHIVE_KEEP: u32 = 100;
/// Capacity of a volume created without a capacity range.
pub const DEFAULT_CAPACITY: u64 = 1 << 30;
/// How often reconciliation is retried while the volume group is unavailable.
pub const RECONCILE_RETRY: Duration = Duration::from_secs(30);

/// What a host is built with beyond its own flags.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// The CSI driver name: the default IQN prefix (`--iqn-prefix` unset) derives from it.
    pub driver_name: String,
    /// Prefix of every external command (`--command-prefix`, split; empty for none).
    pub command_prefix: Vec<String>,
    /// Topologies the host's volumes are reachable from (empty: none; see
    /// [`crate::ops::topology`]).
    pub accessible_topology: Vec<Segments>,
}

/// One storage host, assembled.
#[derive(Debug)]
pub struct StorageHost {
    /// The operations context.
    pub ctx: Ctx,
    /// The saveconfig path.
    pub saveconfig: PathBuf,
    /// The per-volume guards the RPCs take; reconciliation takes them too.
    pub volume_guards: OperationGuards,
    /// What startup reconciliation has not restored yet, shared with Probe and the service
    /// (complete as built: [`StorageHost::start`] calls [`Restoration::expect`]).
    pub restoration: Restoration,
    /// Probe's checks (programs, volume group, thin pool, LIO, restoration).
    pub readiness: Arc<ControllerReadiness>,
    args: StorageHostArgs,
}

/// The programs this configuration runs (only the prefix's program when there is a prefix).
pub fn needed_programs(args: &StorageHostArgs, command_prefix: &[String]) -> Vec<PathBuf> {
    let mut needed: Vec<PathBuf> = tools::lvm_tools().map(PathBuf::from).collect();
    if args.lio_backend == LioBackend::Targetcli {
        needed.push(args.targetcli.clone());
    }
    if let Some(first) = command_prefix.first() {
        needed = vec![PathBuf::from(first)];
    }
    needed
}

/// Builds the host; must run inside a tokio runtime (the saver and the wiper are tasks).
pub fn build(
    args: &StorageHostArgs,
    options: &HostOptions,
    runner: Arc<dyn CommandRunner>,
) -> Result<StorageHost> {
    // LVM's commands in `lvm` shells, everything else as processes (`--lvm-shell`).
    let runner: Arc<dyn CommandRunner> = if args.lvm_shell {
        Arc::new(LvmShell::new(runner, &options.command_prefix))
    } else {
        runner
    };
    let missing = tools::missing(&needed_programs(args, &options.command_prefix));
    if !missing.is_empty() {
        tracing::error!(missing = ?missing, "required programs not found; volumes cannot be served until they are installed");
    }
    let portals = args
        .portals
        .iter()
        .map(|p| validate_portal(p))
        .collect::<Result<Vec<_>>>()?;
    if portals.is_empty() {
        tracing::warn!("no --portal configured: CreateVolume will refuse until one is");
    }
    csi_common::topology::check_one_prefix(&options.accessible_topology)
        .map_err(Error::invalid_argument)?;
    let iqn_prefix = match &args.iqn_prefix {
        Some(prefix) => Iqn::parse(prefix)?,
        None => Iqn::prefix_for_driver(&options.driver_name)?,
    };
    let lvm: Option<Arc<dyn Lvm>> = args.volume_group.as_ref().map(|vg| {
        Arc::new(
            LvmCli::new(Arc::clone(&runner), vg.clone(), args.lvm_timeout)
                .with_wipe_timeout(args.wipe_timeout)
                .with_archive_keep(args.lvm_archive_keep)
                .with_ledger()
                .with_pool_max_age(args.thin_pool_refresh_interval * POOL_MAX_AGE_INTERVALS),
        ) as Arc<dyn Lvm>
    });
    let wiper = lvm
        .as_ref()
        .map(|lvm| WipeHandle::spawn(Arc::clone(lvm), WIPE_RETRY));
    let lio: Arc<dyn Lio> = match args.lio_backend {
        LioBackend::Configfs => Arc::new(ConfigfsLio::new(args.configfs_root.clone())),
        LioBackend::Targetcli => Arc::new(TargetcliLio::new(
            Arc::clone(&runner),
            args.targetcli.clone(),
            args.targetcli_timeout,
            args.configfs_root.clone(),
        )),
    };
    let saveconfig = saveconfig::detect_path(args.saveconfig.as_deref());
    let saver = SaveHandle::spawn(Arc::clone(&lio), saveconfig.clone(), SAVE_DELAY);
    // Every export the RPCs and reconciliation change is read again by the next save.
    let lio: Arc<dyn Lio> = Arc::new(SavedLio::new(lio, saver.clone()));
    let settings = Settings {
        portals,
        iqn_prefix,
        thin_pool: args.thin_pool.clone(),
        default_capacity: DEFAULT_CAPACITY,
        thin_overprovision: args.thin_overprovision_ratio,
        allow_unzeroed_thin_pool: args.allow_unzeroed_thin_pool,
        accessible_topology: options.accessible_topology.clone(),
    };
    let mut ctx =
        Ctx::new(lvm, lio, settings, Some(saver)).with_attach_limit(args.max_volumes_per_node);
    if let Some(wiper) = wiper {
        ctx = ctx.with_wiper(wiper);
    }
    let restoration = Restoration::default();
    let readiness = Arc::new(
        ControllerReadiness::new(runner, args, &options.command_prefix)
            .with_restoration(restoration.clone()),
    );
    Ok(StorageHost {
        ctx,
        saveconfig,
        volume_guards: OperationGuards::new("volume"),
        restoration,
        readiness,
        args: args.clone(),
    })
}

impl StorageHost {
    /// Starts what runs beside the service: reads the CHAP credentials saveconfig.json holds
    /// (before anything can save it again), makes RPCs on volumes not restored yet answer
    /// `Unavailable` until reconciliation completes, and spawns [`start_up`]. Call it once,
    /// right before serving.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let chap = match std::fs::read_to_string(&self.saveconfig) {
            Ok(text) => saveconfig::chap_credentials(&text).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "saveconfig unreadable: CHAP credentials come back on republish");
                reconcile::SavedChap::default()
            }),
            Err(_) => reconcile::SavedChap::default(),
        };
        if self.args.volume_group.is_some() {
            self.restoration.expect();
        }
        tokio::spawn(start_up(
            self.ctx.clone(),
            Arc::new(chap),
            self.volume_guards.clone(),
            self.restoration.clone(),
            self.args.clone(),
        ))
    }

    /// Writes a change still waiting for the coalesced save, for the end of serving.
    pub async fn shutdown(&self) {
        if let Err(e) = self.ctx.lio_saved().await {
            tracing::error!(error = %e, "cannot save the LIO configuration at shutdown");
        }
    }
}

/// What runs beside the service from the start: seeds the ledger (reading LIO's state beside
/// it, for the first pass) and starts its resync, resumes unfinished wipes, then reconciles LIO
/// with LVM (`chap`: the credentials saveconfig.json held at start), retrying in the background
/// until a pass succeeds (a retried pass reads LIO again).
pub async fn start_up(
    ctx: Ctx,
    chap: Arc<reconcile::SavedChap>,
    guards: OperationGuards,
    restoration: Restoration,
    args: StorageHostArgs,
) {
    // LIO's state is read while the ledger seeds (an LVM report and configfs reads overlap
    // well), for the first pass: no RPC naming a volume is served before that pass lists them.
    let mut read = None;
    if let Ok(lvm) = ctx.lvm() {
        // Seed the ledger from one report before reconciliation reads it (a failure leaves it
        // empty: reads then ask LVM and the first admission seeds it).
        let started = std::time::Instant::now();
        let ((seeded, seed_ms), lio_read) = tokio::join!(
            async { (lvm.resync().await, started.elapsed().as_millis()) },
            async {
                let read = reconcile::LioRead::now(&ctx).await;
                (read, started.elapsed().as_millis())
            }
        );
        match lio_read {
            (Ok(state), ms) => {
                tracing::info!(targets = state.targets(), ms, "read LIO's state");
                read = Some(state);
            }
            (Err(e), _) => {
                tracing::warn!(error = %e, "cannot read LIO's state; the pass reads it again");
            }
        }
        match seeded {
            Ok(survey) => tracing::info!(
                lvs = survey.lvs.len(),
                ms = seed_ms,
                "seeded the volume-group ledger"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the volume group yet; the ledger seeds later");
            }
        }
        resync::spawn(
            Arc::clone(lvm),
            Arc::clone(&ctx.lio),
            ctx.saver().cloned(),
            args.lvm_resync_interval,
        );
        if let Some(pool) = &args.thin_pool {
            resync::spawn_pool_refresh(
                Arc::clone(lvm),
                pool.clone(),
                args.thin_pool_refresh_interval,
            );
        }
    }
    // Resume the wipes a stopped host left unfinished (the quarantined LVs are the state).
    ctx.wipe_requested();
    if args.volume_group.is_none() {
        return;
    }
    loop {
        let pass = reconcile::reconcile_serving(
            &ctx,
            Arc::clone(&chap),
            &guards,
            &restoration,
            reconcile::RESTORE_PARALLELISM,
            read.take(),
        );
        match pass.await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation failed; retrying in the background");
            }
        }
        tokio::time::sleep(RECONCILE_RETRY).await;
    }
}
