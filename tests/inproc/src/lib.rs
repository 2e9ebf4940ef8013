//! Serves a plugin's real routes on a unix socket in a temp dir, in this process, and hands
//! back a carvectl client: the CO's view without a cluster or a kernel.

use carvectl::{Client, Endpoint};
use csi_common::command::CommandRunner;
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::service::Routes;

/// A plugin served in-process until [`Served::shutdown`].
#[derive(Debug)]
pub struct Served {
    /// Client connected to the plugin.
    pub client: Client,
    /// The socket path.
    pub socket: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Serves `routes` on `<tmp>/sub/csi.sock` (the parent is created by the server).
    pub async fn start(routes: Routes) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("sub").join("csi.sock");
        let endpoint = Endpoint::Unix(socket.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let serve_endpoint = endpoint.clone();
        let task = tokio::spawn(async move {
            csi_common::serve::serve(&serve_endpoint, routes, Duration::from_secs(30), async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        let client = Client::connect_with_retry(&endpoint, Duration::from_secs(10))
            .await
            .expect("connect");
        Self {
            client,
            socket,
            stop,
            task,
            _dir: dir,
        }
    }

    /// Serves the controller's real routes for `flags`, running tools via `runner`.
    pub async fn controller(flags: &[&str], runner: Arc<dyn CommandRunner>) -> Self {
        Self::start(controller_routes(&controller_args(flags), runner)).await
    }

    /// Serves the node plugin's real routes for `flags`, running tools via `runner`.
    pub async fn node(flags: &[&str], runner: Arc<dyn CommandRunner>) -> Self {
        Self::start(node_routes(&node_args(flags), runner)).await
    }

    /// Stops serving (as on SIGTERM) and waits for the server to finish.
    pub async fn shutdown(self) -> PathBuf {
        let _ = self.stop.send(());
        drop(self.client);
        self.task.await.expect("server task");
        self.socket
    }
}

/// Parses controller flags as the binary would.
pub fn controller_args(args: &[&str]) -> csi_controller::config::ControllerArgs {
    clap::Parser::try_parse_from(std::iter::once("csi-controller").chain(args.iter().copied()))
        .expect("flags")
}

/// Parses node flags as the binary would.
pub fn node_args(args: &[&str]) -> csi_node::config::NodeArgs {
    clap::Parser::try_parse_from(std::iter::once("csi-node").chain(args.iter().copied()))
        .expect("flags")
}

/// The controller's real routes (Identity + Controller) for `args`, running tools via `runner`.
pub fn controller_routes(
    args: &csi_controller::config::ControllerArgs,
    runner: Arc<dyn CommandRunner>,
) -> Routes {
    csi_controller::server::build(args, runner)
        .expect("controller builds")
        .routes
}

/// The node plugin's real routes (Identity + Node) for `args`, running tools via `runner`.
pub fn node_routes(args: &csi_node::config::NodeArgs, runner: Arc<dyn CommandRunner>) -> Routes {
    csi_node::server::routes(args, runner).expect("node plugin builds")
}
