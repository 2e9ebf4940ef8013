//! Starts `csi-controller` and `csi-node` as a cluster would (unix sockets, their own flags)
//! and connects carvectl's clients to them. Processes are killed when the [`Driver`] drops.

use crate::lab::Lab;
use carvectl::{Client, Endpoint};
use csi_proto::v1::{controller_client::ControllerClient, node_client::NodeClient};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// How to start the driver.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// `configfs` or `targetcli`.
    pub lio_backend: &'static str,
    /// Extra controller flags.
    pub controller_args: Vec<String>,
    /// Extra node flags. Unless they name `--upkeep-interval`, the node runs with
    /// `--upkeep-interval 0`: scenarios log in by hand (as another initiator would) to targets
    /// that have no stage record, which is exactly what the stale-session sweep removes.
    /// tests/guest/tests/paths.rs turns the sweep on where it is the subject.
    pub node_args: Vec<String>,
    /// How long each plugin may take to answer its Probe ready (2 minutes by default; the
    /// bench's large points give the controller's first reconciliation longer).
    pub ready_within: Duration,
}

impl DriverOptions {
    /// These options with the LIO backend `backend`.
    pub fn backend(mut self, backend: &'static str) -> Self {
        self.lio_backend = backend;
        self
    }

    /// These options with `args` after the controller flags they have.
    pub fn controller(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.controller_args
            .extend(args.into_iter().map(Into::into));
        self
    }

    /// These options with `args` after the node flags they have.
    pub fn node(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.node_args.extend(args.into_iter().map(Into::into));
        self
    }
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            lio_backend: "configfs",
            controller_args: Vec::new(),
            node_args: Vec::new(),
            ready_within: READY_WITHIN,
        }
    }
}

/// The running controller and node plugin, with clients.
#[derive(Debug)]
pub struct Driver {
    /// The lab.
    pub lab: Lab,
    /// Scratch directory: sockets, node state, staging and target paths, logs.
    pub dir: tempfile::TempDir,
    options: DriverOptions,
    controller_process: Option<Child>,
    node_process: Option<Child>,
    /// Client of the controller's endpoint.
    pub controller: Client,
    /// Client of the node plugin's endpoint.
    pub node: Client,
}

const READY_WITHIN: Duration = Duration::from_mins(2);

impl Driver {
    /// Starts both plugins and waits until each Probe answers ready.
    pub async fn start(lab: &Lab, options: DriverOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("carve-test-")
            .tempdir_in("/var/tmp")
            .expect("scratch dir");
        std::fs::create_dir_all(dir.path().join("pods")).expect("pods dir");
        let controller_process = spawn_controller(lab, &options, dir.path());
        let node_process = spawn_node(&options, dir.path());
        let within = options.ready_within;
        let controller = wait_ready(&dir.path().join("controller.sock"), within).await;
        let node = wait_ready(&dir.path().join("node.sock"), within).await;
        Self {
            lab: lab.clone(),
            dir,
            options,
            controller_process: Some(controller_process),
            node_process: Some(node_process),
            controller,
            node,
        }
    }

    /// Stops the controller (SIGTERM, then waits) and starts it again.
    pub async fn restart_controller(&mut self) {
        stop(self.controller_process.take());
        self.controller_process = Some(spawn_controller(&self.lab, &self.options, self.dir.path()));
        self.controller = wait_ready(
            &self.dir.path().join("controller.sock"),
            self.options.ready_within,
        )
        .await;
    }

    /// Kills the controller with SIGKILL (no shutdown work at all, as a crash or power loss)
    /// and waits for it to be gone.
    pub fn kill_controller(&mut self) {
        if let Some(mut child) = self.controller_process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the controller (after [`Driver::kill_controller`]) and waits until it is ready.
    pub async fn start_controller(&mut self) {
        stop(self.controller_process.take());
        self.controller_process = Some(spawn_controller(&self.lab, &self.options, self.dir.path()));
        self.controller = wait_ready(
            &self.dir.path().join("controller.sock"),
            self.options.ready_within,
        )
        .await;
    }

    /// Stops the controller (SIGTERM, SIGKILL after 10 s) and waits until it is gone.
    pub fn stop_controller(&mut self) {
        stop(self.controller_process.take());
    }

    /// The controller's log so far.
    pub fn controller_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("controller.log")).unwrap_or_default()
    }

    /// Stops the controller (SIGTERM, then waits), starts it again and connects to it without
    /// waiting for Probe to answer ready (the caller watches it).
    pub async fn spawn_controller(&mut self) -> Client {
        stop(self.controller_process.take());
        self.controller_process = Some(spawn_controller(&self.lab, &self.options, self.dir.path()));
        let endpoint = Endpoint::Unix(self.dir.path().join("controller.sock"));
        Client::connect_with_retry(&endpoint, READY_WITHIN)
            .await
            .unwrap_or_else(|e| panic!("controller does not answer: {e}\n{}", self.logs()))
    }

    /// Stops the node plugin (SIGTERM, then waits) and starts it again.
    pub async fn restart_node(&mut self) {
        stop(self.node_process.take());
        self.node_process = Some(spawn_node(&self.options, self.dir.path()));
        self.node = wait_ready(
            &self.dir.path().join("node.sock"),
            self.options.ready_within,
        )
        .await;
    }

    /// The controller's Controller service, to call (a handle on the same connection).
    pub fn controller_rpc(&self) -> ControllerClient<tonic::transport::Channel> {
        self.controller.controller.clone()
    }

    /// The node plugin's Node service, to call (a handle on the same connection).
    pub fn node_rpc(&self) -> NodeClient<tonic::transport::Channel> {
        self.node.node.clone()
    }

    /// The value of a call that must succeed; otherwise a panic naming `what`, with both
    /// plugins' logs.
    pub fn ok<T>(&self, what: impl std::fmt::Display, result: Result<T, tonic::Status>) -> T {
        result.unwrap_or_else(|s| panic!("{what}: {s:?}\n{}", self.logs()))
    }

    /// `call` with `req` twice, `what` an idempotent RPC: panics (with the logs) unless both
    /// calls succeed.
    pub async fn twice<R: Clone, T>(
        &self,
        what: &str,
        req: R,
        mut call: impl AsyncFnMut(R) -> Result<T, tonic::Status>,
    ) {
        self.ok(what, call(req.clone()).await);
        self.ok(format_args!("{what} is idempotent"), call(req).await);
    }

    /// A staging path for `name`, created as kubelet does before NodeStageVolume.
    pub fn staging_path(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join("staging").join(name);
        std::fs::create_dir_all(&path).expect("staging dir");
        path
    }

    /// A pod's target path for `name`, whose parent exists, as kubelet prepares it.
    pub fn target_path(&self, name: &str) -> PathBuf {
        let parent = self.dir.path().join("pods").join(name);
        std::fs::create_dir_all(&parent).expect("pod dir");
        parent.join("volume")
    }

    /// The node state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("node-state")
    }

    /// The node plugin's log so far.
    pub fn node_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// The kernel name of the disk the node plugin staged volume `id` on (its stage record's
    /// `device`).
    pub fn staged_disk(&self, id: &str) -> String {
        let record = std::fs::read_to_string(self.state_dir().join(format!("{id}.json")))
            .expect("stage record");
        let json: serde_json::Value = serde_json::from_str(&record).expect("stage record JSON");
        json["device"]
            .as_str()
            .expect("device in record")
            .to_string()
    }

    /// The contents of both plugins' logs so far, for failure messages.
    pub fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- controller ---\n{}\n--- node ---\n{}",
            read("controller.log"),
            read("node.log")
        )
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        stop(self.controller_process.take());
        stop(self.node_process.take());
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .expect("log file");
    Stdio::from(file)
}

fn spawn_controller(lab: &Lab, options: &DriverOptions, dir: &Path) -> Child {
    let mut command = Command::new("csi-controller");
    command
        .arg("--endpoint")
        .arg(format!("unix://{}", dir.join("controller.sock").display()))
        .args([
            "--volume-group",
            &lab.vg,
            "--thin-pool",
            &lab.pool,
            "--portal",
            &lab.portal,
        ])
        .args(["--lio-backend", options.lio_backend])
        .args(&options.controller_args);
    spawn_logged(command, dir, "controller.log")
}

fn spawn_node(options: &DriverOptions, dir: &Path) -> Child {
    let mut command = Command::new("csi-node");
    command
        .arg("--endpoint")
        .arg(format!("unix://{}", dir.join("node.sock").display()))
        .arg("--state-dir")
        .arg(dir.join("node-state"))
        .arg("--kubelet-dir")
        .arg(dir)
        .args(&options.node_args)
        .args(
            (!options
                .node_args
                .iter()
                .any(|a| a.starts_with("--upkeep-interval")))
            .then_some(["--upkeep-interval", "0"])
            .into_iter()
            .flatten(),
        );
    spawn_logged(command, dir, "node.log")
}

/// The plugins' log filter unless `CARVE_TEST_LOG` names one: Carve's own debug lines (every
/// external command) without the HTTP/2 frame-by-frame lines of the transport crates, which
/// cost about 5% of a guest run (integrity: 143-147 s against 151-154 s) and say nothing
/// about Carve.
pub const LOG_FILTER: &str = "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info";

/// Spawns `command` logging at `CARVE_TEST_LOG` (default [`LOG_FILTER`]) unless it sets
/// `RUST_LOG` itself, its output appended to `log` in `dir`.
pub(crate) fn spawn_logged(mut command: Command, dir: &Path, log: &str) -> Child {
    let program = command.get_program().to_string_lossy().into_owned();
    if !command.get_envs().any(|(key, _)| key == "RUST_LOG") {
        command.env(
            "RUST_LOG",
            std::env::var("CARVE_TEST_LOG").unwrap_or_else(|_| LOG_FILTER.into()),
        );
    }
    command
        .stdout(log_file(dir, log))
        .stderr(log_file(dir, log))
        .spawn()
        .unwrap_or_else(|e| panic!("{program} on PATH: {e}"))
}

async fn wait_ready(socket: &Path, within: Duration) -> Client {
    let endpoint = Endpoint::Unix(socket.to_path_buf());
    Client::wait_until_ready(&endpoint, within)
        .await
        .unwrap_or_else(|e| panic!("{} did not become ready: {e}", socket.display()))
}

/// Stops `child` (SIGTERM, SIGKILL after 10 s) and waits until it is gone.
pub(crate) fn stop(child: Option<Child>) {
    if let Some(mut child) = child {
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
