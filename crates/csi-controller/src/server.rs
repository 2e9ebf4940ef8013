//! Builds the controller from its configuration: the storage host ([`crate::host`]: backends,
//! operations context, saver, readiness), or with `--agents` the agents of the agents file
//! ([`crate::fleet`]) and no host of its own, then the Identity and Controller routes over it.
//!
//! With agents: the file and the TLS files are read once, here, and any fault in them is a
//! start-up error naming the file; agents are connected lazily (one down at start is no error);
//! Probe is ready at once (an agent that cannot be reached makes its own volumes' RPCs
//! UNAVAILABLE, and restarting the controller would not bring it back).
//!
//! Invariants: as [`crate::host::build`]'s (the controller starts without its volume group;
//! Probe and the volume RPCs share one [`Restoration`](crate::restoration::Restoration) with
//! startup reconciliation; a bad portal or IQN prefix is a start-up error); the service takes
//! the host's per-volume guards, which reconciliation takes too.

use crate::fleet::{self, Backends};
use crate::{
    config::ControllerArgs,
    host::{self, HostOptions, StorageHost},
    service::ControllerService,
};
use csi_common::{
    Error, Result,
    command::{BoxFuture, CommandRunner},
    identity::{IdentityService, Readiness, expansion_capability, service_capability},
};
use csi_proto::v1::{
    controller_server::ControllerServer,
    identity_server::IdentityServer,
    plugin_capability::{service::Type as ServiceType, volume_expansion::Type as ExpansionType},
};
use std::{path::Path, sync::Arc};
use tonic::service::Routes;

/// The assembled controller.
#[derive(Debug)]
pub struct Controller {
    /// The storage host it drives (`None` with agents).
    pub host: Option<StorageHost>,
    /// The gRPC routes (Identity + Controller).
    pub routes: Routes,
}

/// Builds the controller; must run inside a tokio runtime (the saver is a task).
pub fn build(args: &ControllerArgs, runner: Arc<dyn CommandRunner>) -> Result<Controller> {
    match &args.agents {
        Some(file) => build_with_agents(args, file),
        None => build_local(args, runner),
    }
}

/// The controller over the agents of `file`, with the client certificate in --agent-tls-dir.
fn build_with_agents(args: &ControllerArgs, file: &Path) -> Result<Controller> {
    let configs = fleet::config::load(file)?;
    let mtls = args
        .agent_tls_files()
        .load()
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
    let agents = configs
        .into_iter()
        .map(|config| fleet::Agent::connect(config, &mtls))
        .collect::<Result<Vec<_>>>()?;
    for agent in &agents {
        tracing::info!(agent = agent.name(), address = %agent.config.address, pool = %agent.config.pool,
            segments = %agent.config.segments, default = agent.config.default, "storage host behind its agent");
    }
    let backends = Backends::agents(agents);
    let identity = identity(args, backends.constrained(), Arc::new(AlwaysReady));
    let routes = Routes::new(IdentityServer::new(identity))
        .add_service(ControllerServer::new(ControllerService::over(backends)));
    Ok(Controller { host: None, routes })
}

/// The Identity service; VOLUME_ACCESSIBILITY_CONSTRAINTS only when volumes are `constrained`.
fn identity(
    args: &ControllerArgs,
    constrained: bool,
    readiness: Arc<dyn Readiness>,
) -> IdentityService {
    IdentityService::new(
        args.common.driver_name.clone(),
        env!("CARGO_PKG_VERSION"),
        [
            Some(service_capability(ServiceType::ControllerService)),
            Some(expansion_capability(ExpansionType::Online)),
            // Only with topologies configured: the provisioner then builds requirements from
            // every node's CSINode topology keys (external-provisioner,
            // pkg/controller/topology.go, GenerateAccessibilityRequirements) and fails for a
            // node reporting none.
            constrained.then(|| service_capability(ServiceType::VolumeAccessibilityConstraints)),
        ]
        .into_iter()
        .flatten()
        .collect(),
        readiness,
    )
}

/// Probe's verdict with agents: ready (see the module).
#[derive(Debug)]
struct AlwaysReady;

impl Readiness for AlwaysReady {
    fn check(&self) -> BoxFuture<'_, std::result::Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// The single-host controller: this host's LVM and LIO.
fn build_local(args: &ControllerArgs, runner: Arc<dyn CommandRunner>) -> Result<Controller> {
    let options = HostOptions {
        driver_name: args.common.driver_name.clone(),
        command_prefix: args.common.prefix(),
        accessible_topology: args.accessible_topology.clone(),
    };
    let host = host::build(&args.host, &options, runner)?;
    let identity = identity(
        args,
        !args.accessible_topology.is_empty(),
        host.readiness.clone(),
    );
    let service =
        ControllerService::with_volume_guards(host.ctx.clone(), host.volume_guards.clone())
            .with_restoration(host.restoration.clone());
    let routes =
        Routes::new(IdentityServer::new(identity)).add_service(ControllerServer::new(service));
    Ok(Controller {
        host: Some(host),
        routes,
    })
}
