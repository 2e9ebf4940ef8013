//! Builds the controller from its configuration: the storage host ([`crate::host`]: backends,
//! operations context, saver, readiness), then the Identity and Controller routes over it.
//!
//! Invariants: as [`crate::host::build`]'s (the controller starts without its volume group;
//! Probe and the volume RPCs share one [`Restoration`](crate::restoration::Restoration) with
//! startup reconciliation; a bad portal or IQN prefix is a start-up error); the service takes
//! the host's per-volume guards, which reconciliation takes too.

use crate::{
    config::ControllerArgs,
    host::{self, HostOptions, StorageHost},
    service::ControllerService,
};
use csi_common::{
    Result,
    command::CommandRunner,
    identity::{IdentityService, expansion_capability, service_capability},
};
use csi_proto::v1::{
    controller_server::ControllerServer,
    identity_server::IdentityServer,
    plugin_capability::{service::Type as ServiceType, volume_expansion::Type as ExpansionType},
};
use std::sync::Arc;
use tonic::service::Routes;

/// The assembled controller.
#[derive(Debug)]
pub struct Controller {
    /// The storage host it drives.
    pub host: StorageHost,
    /// The gRPC routes (Identity + Controller).
    pub routes: Routes,
}

/// Builds the controller; must run inside a tokio runtime (the saver is a task).
pub fn build(args: &ControllerArgs, runner: Arc<dyn CommandRunner>) -> Result<Controller> {
    let options = HostOptions {
        driver_name: args.common.driver_name.clone(),
        command_prefix: args.common.prefix(),
        accessible_topology: args.accessible_topology.clone(),
    };
    let host = host::build(&args.host, &options, runner)?;
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
        host.readiness.clone(),
    );
    let service =
        ControllerService::with_volume_guards(host.ctx.clone(), host.volume_guards.clone())
            .with_restoration(host.restoration.clone());
    let routes =
        Routes::new(IdentityServer::new(identity)).add_service(ControllerServer::new(service));
    Ok(Controller { host, routes })
}
