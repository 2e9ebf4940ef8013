//! Builds the controller from its configuration: backends, operations context, saver, routes.
//!
//! Invariants: the controller starts without its volume group (Probe says not ready, RPCs say
//! why); Probe and the volume RPCs share one [`Restoration`] record with startup
//! reconciliation; a bad portal or IQN prefix is a start-up error; missing executables are named in an
//! error log line at start.

use crate::{
    config::{ControllerArgs, LioBackend},
    lio::{
        Lio,
        configfs::ConfigfsLio,
        saveconfig::{self, SaveHandle},
        targetcli::TargetcliLio,
    },
    lvm::{Lvm, LvmCli},
    ops::{Ctx, Settings},
    readiness::ControllerReadiness,
    restoration::Restoration,
    service::ControllerService,
    tools,
    wiper::WipeHandle,
};
use csi_common::{
    Error, Result,
    command::CommandRunner,
    contract::validate_portal,
    guard::OperationGuards,
    identity::{IdentityService, expansion_capability, service_capability},
    ids::Iqn,
};
use csi_proto::v1::{
    controller_server::ControllerServer,
    identity_server::IdentityServer,
    plugin_capability::{service::Type as ServiceType, volume_expansion::Type as ExpansionType},
};
use std::{path::PathBuf, sync::Arc, time::Duration};
use tonic::service::Routes;

/// How long the saver gathers requests before writing saveconfig.json.
pub const SAVE_DELAY: Duration = Duration::from_secs(2);
/// How long the wiper waits before retrying a failed wipe.
pub const WIPE_RETRY: Duration = Duration::from_mins(1);
/// A thin-pool reading stays good for admission this many `--thin-pool-refresh-interval`s (one
/// missed refresh is no reason for a request to read LVM; a stopped refresher is).
pub const POOL_MAX_AGE_INTERVALS: u32 = 3;
/// Capacity of a volume created without a capacity range.
pub const DEFAULT_CAPACITY: u64 = 1 << 30;

/// The assembled controller.
#[derive(Debug)]
pub struct Controller {
    /// The operations context.
    pub ctx: Ctx,
    /// The saveconfig path.
    pub saveconfig: PathBuf,
    /// The gRPC routes (Identity + Controller).
    pub routes: Routes,
    /// The per-volume guards the RPCs take; reconciliation takes them too.
    pub volume_guards: OperationGuards,
    /// What startup reconciliation has not restored yet, shared with Probe and the service
    /// (complete as built: the binary calls [`Restoration::expect`] before it serves).
    pub restoration: Restoration,
}

/// The programs this configuration runs.
pub fn needed_programs(args: &ControllerArgs) -> Vec<PathBuf> {
    let mut needed: Vec<PathBuf> = tools::LVM_TOOLS.iter().map(PathBuf::from).collect();
    if args.lio_backend == LioBackend::Targetcli {
        needed.push(args.targetcli.clone());
    }
    if let Some(first) = args.common.prefix().first() {
        needed = vec![PathBuf::from(first)];
    }
    needed
}

/// Builds the controller; must run inside a tokio runtime (the saver is a task).
pub fn build(args: &ControllerArgs, runner: Arc<dyn CommandRunner>) -> Result<Controller> {
    let missing = tools::missing(&needed_programs(args));
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
    csi_common::topology::check_one_prefix(&args.accessible_topology)
        .map_err(Error::invalid_argument)?;
    let iqn_prefix = match &args.iqn_prefix {
        Some(prefix) => Iqn::parse(prefix)?,
        None => Iqn::prefix_for_driver(&args.common.driver_name)?,
    };
    let lvm: Option<Arc<dyn Lvm>> = args.volume_group.as_ref().map(|vg| {
        Arc::new(
            LvmCli::new(Arc::clone(&runner), vg.clone(), args.lvm_timeout)
                .with_wipe_timeout(args.wipe_timeout)
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
    let settings = Settings {
        portals,
        iqn_prefix,
        thin_pool: args.thin_pool.clone(),
        default_capacity: DEFAULT_CAPACITY,
        thin_overprovision: args.thin_overprovision_ratio,
        allow_unzeroed_thin_pool: args.allow_unzeroed_thin_pool,
        accessible_topology: args.accessible_topology.clone(),
    };
    let mut ctx =
        Ctx::new(lvm, lio, settings, Some(saver)).with_attach_limit(args.max_volumes_per_node);
    if let Some(wiper) = wiper {
        ctx = ctx.with_wiper(wiper);
    }
    let restoration = Restoration::default();
    let readiness =
        Arc::new(ControllerReadiness::new(runner, args).with_restoration(restoration.clone()));
    let identity = IdentityService::new(
        args.common.driver_name.clone(),
        env!("CARGO_PKG_VERSION"),
        [
            Some(service_capability(ServiceType::ControllerService)),
            Some(expansion_capability(ExpansionType::Online)),
            // Only with topologies configured: the provisioner then builds requirements from
            // every node's CSINode topology keys (external-provisioner,
            // pkg/controller/topology.go, GenerateAccessibilityRequirements) and fails for a
            // node reporting none.
            (!args.accessible_topology.is_empty())
                .then(|| service_capability(ServiceType::VolumeAccessibilityConstraints)),
        ]
        .into_iter()
        .flatten()
        .collect(),
        readiness,
    );
    let volume_guards = OperationGuards::new("volume");
    let service = ControllerService::with_volume_guards(ctx.clone(), volume_guards.clone())
        .with_restoration(restoration.clone());
    let routes =
        Routes::new(IdentityServer::new(identity)).add_service(ControllerServer::new(service));
    Ok(Controller {
        ctx,
        saveconfig,
        routes,
        volume_guards,
        restoration,
    })
}
