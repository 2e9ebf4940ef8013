//! "Another node" in a one-machine lab: a second csi-node on this machine that logs in as the
//! lab's second initiator through its iscsiadm iface, with its own state directory.
//!
//! [`SecondNode::stop`] ends it with SIGTERM; a panic kills it (Drop), so a failing scenario
//! never leaves it running for the next one.

use crate::{Driver, run};
use carvectl::{Client, Endpoint};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// The second node plugin and its client.
#[derive(Debug)]
pub struct SecondNode {
    child: Child,
    client: Option<Client>,
    state: PathBuf,
}

impl SecondNode {
    /// Starts it beside `driver` (socket, state and log in the driver's scratch directory) and
    /// waits until it answers.
    pub async fn start(driver: &Driver) -> Self {
        let dir = driver.dir.path();
        let socket = dir.join("node2.sock");
        let state = dir.join("node2-state");
        let log = std::fs::File::create(dir.join("node2.log")).expect("node2 log");
        let child = Command::new("csi-node")
            .arg("--endpoint")
            .arg(format!("unix://{}", socket.display()))
            .arg("--state-dir")
            .arg(&state)
            .arg("--kubelet-dir")
            .arg(dir)
            .args(["--iscsi-iface", &driver.lab.iface2])
            .args(["--node-id", &driver.lab.initiator2])
            .args(["--upkeep-interval", "0"]) // as Driver's node: no sweeps of hand-made sessions
            .env("RUST_LOG", crate::driver::LOG_FILTER)
            .stdout(Stdio::from(log.try_clone().expect("log fd")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("csi-node on PATH");
        let client = Client::wait_until_ready(&Endpoint::Unix(socket), Duration::from_mins(2))
            .await
            .expect("second csi-node ready");
        Self {
            child,
            client: Some(client),
            state,
        }
    }

    /// Its client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("running")
    }

    /// The names in its state directory (its stage records).
    pub fn stage_records(&self) -> Vec<String> {
        std::fs::read_dir(&self.state)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGTERM, then waits without blocking the runtime: the plugin's graceful shutdown
    /// needs this side of the connection to answer, so the client is dropped first.
    pub async fn stop(mut self) {
        self.client = None;
        let _ = run("kill", &["-TERM", &self.child.id().to_string()]);
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SecondNode {
    fn drop(&mut self) {
        // After stop, or on a panic: SIGKILL does not need the runtime to make progress.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
