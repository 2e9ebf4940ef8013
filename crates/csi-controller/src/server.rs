//! Builds the controller's gRPC routes from its configuration.

use crate::{config::ControllerArgs, readiness::ControllerReadiness};
use csi_common::{
    command::CommandRunner,
    identity::{IdentityService, service_capability},
};
use csi_proto::v1::{
    identity_server::IdentityServer, plugin_capability::service::Type as ServiceType,
};
use std::sync::Arc;
use tonic::service::Routes;

/// The Identity (and, as it grows, Controller) services for `args`, running tools via `runner`.
pub fn routes(args: &ControllerArgs, runner: Arc<dyn CommandRunner>) -> Routes {
    let readiness = Arc::new(ControllerReadiness::new(Arc::clone(&runner), args));
    let identity = IdentityService::new(
        args.common.driver_name.clone(),
        env!("CARGO_PKG_VERSION"),
        vec![service_capability(ServiceType::ControllerService)],
        readiness,
    );
    Routes::new(IdentityServer::new(identity))
}
