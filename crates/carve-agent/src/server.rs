//! Builds the agent from its flags (the storage host through [`csi_controller::host::build`],
//! the very runtime the single-host controller drives, then the Agent routes over it) and
//! serves it with mutual TLS only ([`csi_common::serve::serve_mtls`]).
//!
//! Invariants: there is no plaintext listener; the TLS files are read once, before anything is
//! served, and a missing or malformed one is a start-up error naming the file (never its
//! contents); the host's start-up work (ledger, wipes, reconciliation) starts right before
//! serving, and a change waiting for the coalesced saveconfig.json write is saved at the end.

use crate::{config::AgentArgs, proto::agent_server::AgentServer, service::AgentService};
use csi_common::{
    Result,
    command::CommandRunner,
    mtls::Mtls,
    serve::{self, ServeError},
};
use csi_controller::host::{self, HostOptions, StorageHost};
use std::{future::Future, sync::Arc};
use tonic::service::Routes;

/// The assembled agent.
#[derive(Debug)]
pub struct Agent {
    /// The storage host it drives.
    pub host: StorageHost,
    /// The gRPC routes (the Agent service).
    pub routes: Routes,
}

/// Builds the agent; must run inside a tokio runtime (the host's saver is a task).
pub fn build(args: &AgentArgs, runner: Arc<dyn CommandRunner>) -> Result<Agent> {
    let options = HostOptions {
        driver_name: args.driver_name.clone(),
        command_prefix: args.daemon.prefix(),
        // Topology is the controller's to place by: the agent serves whoever reaches it.
        accessible_topology: Vec::new(),
    };
    let host = host::build(&args.host, &options, runner)?;
    let routes = Routes::new(AgentServer::new(AgentService::for_host(&host)));
    Ok(Agent { host, routes })
}

/// Starts the host's background work, then serves `agent` on `listener` with `mtls` until
/// `shutdown` completes, and saves LIO's configuration once serving has stopped.
pub async fn run(
    agent: Agent,
    listener: tokio::net::TcpListener,
    mtls: &Mtls,
    slow_rpc: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    agent.host.start();
    let served = serve::serve_mtls(listener, agent.routes, slow_rpc, mtls, shutdown).await;
    agent.host.shutdown().await;
    served
}
