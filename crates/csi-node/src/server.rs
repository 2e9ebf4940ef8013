//! Builds the node plugin's gRPC routes from its configuration.

use crate::{config::NodeArgs, readiness::NodeReadiness};
use csi_common::{command::CommandRunner, identity::IdentityService};
use csi_proto::v1::identity_server::IdentityServer;
use std::sync::Arc;
use tonic::service::Routes;

/// The Identity (and, as it grows, Node) services for `args`, running tools via `runner`.
pub fn routes(args: &NodeArgs, runner: Arc<dyn CommandRunner>) -> Routes {
    let readiness = Arc::new(NodeReadiness::new(
        Arc::clone(&runner),
        args.iscsiadm.clone(),
    ));
    // A node plugin advertises no plugin service capability beyond its Node service, which
    // every plugin has; CONTROLLER_SERVICE is the controller's.
    let identity = IdentityService::new(
        args.common.driver_name.clone(),
        env!("CARGO_PKG_VERSION"),
        vec![],
        readiness,
    );
    Routes::new(IdentityServer::new(identity))
}
