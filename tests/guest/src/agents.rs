//! Storage agents in the guest (issue 19): `carve-agent` processes over the machine's real LVM
//! and LIO, the certificates of their mutual TLS (csi-common's rcgen [`Ca`]), the agents file
//! the controller reads (docs/agents.md) and the driver options that point it there.
//!
//! Several agents may share one machine's LIO: each gets its own IQN prefix and saveconfig
//! file, so one agent's reconciliation never sees another's targets as its own. An [`Agent`] is
//! started and stopped as the driver's plugins are ([`crate::driver`]) and stopped when dropped;
//! what it leaves behind is accounted for by [`crate::leaks`] on its volume group.

use crate::{
    DriverOptions,
    driver::{spawn_logged, stop},
};
use csi_common::mtls::{MtlsFiles, connect};
pub use csi_common::testing::tls::Ca;
use csi_proto::agent::v1::{StateRequest, StateResponse, agent_client::AgentClient};
use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

/// The topology key the lab's agents serve segments of (docs/topology.md).
pub const ZONE: &str = "topology.carve.dev/zone";

/// How long an agent may take to listen and report ready (reconciliation of a fresh VG).
const READY_WITHIN: Duration = Duration::from_mins(2);

/// One storage agent: what it serves and how the controller reaches it.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Its name in the agents file (and in its volumes' ids).
    pub name: String,
    /// The volume group it carves.
    pub vg: String,
    /// The thin pool in `vg`.
    pub pool: String,
    /// `ip:port` it listens on (and the controller dials).
    pub listen: SocketAddr,
    /// The iSCSI portal `ip:port` its targets listen on.
    pub portal: String,
    /// The value of [`ZONE`] its volumes are reachable from.
    pub zone: String,
    /// Its `--lio-backend`: `configfs` or `targetcli`.
    pub lio_backend: &'static str,
}

impl AgentSpec {
    /// The IQN prefix of its targets: the driver's default prefix with its name appended.
    pub fn iqn_prefix(&self) -> String {
        format!("iqn.2024-01.dev.carve.{}", self.name)
    }

    /// The prefix of the volume ids it issues (`AGENT:VG:`).
    pub fn id_prefix(&self) -> String {
        format!("{}:{}:", self.name, self.vg)
    }

    /// Its entry in the agents file (docs/agents.md), its certificate naming its IP address.
    pub fn entry(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "address": format!("https://{}", self.listen),
            "segments": { ZONE: self.zone },
            "pools": [self.vg],
        })
    }
}

/// The lab's certificate authority and where the certificates it signs are written.
#[derive(Debug)]
pub struct Pki {
    /// The CA both sides trust.
    pub ca: Ca,
    dir: PathBuf,
}

impl Pki {
    /// A fresh CA writing into `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            ca: Ca::new("carve lab agents CA"),
            dir: dir.to_path_buf(),
        }
    }

    /// A `--tls-dir` in `dir/<who>` for a certificate naming `names` (DNS names or IPs).
    pub fn issue(&self, who: &str, names: &[&str]) -> MtlsFiles {
        self.ca.files(&self.dir.join(who), names, &self.ca)
    }

    /// The controller's `--agent-tls-dir` (issued on first use).
    pub fn controller_dir(&self) -> PathBuf {
        let dir = self.dir.join("controller");
        if !dir.join("tls.key").exists() {
            self.issue("controller", &["carve-controller"]);
        }
        dir
    }

    /// The controller's client certificate files (what a legitimate client presents).
    pub fn controller_files(&self) -> MtlsFiles {
        let dir = self.controller_dir();
        MtlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    /// Controller flags for an agents file over `agents` written into this directory, with the
    /// controller's certificate from [`Pki::controller_dir`].
    pub fn driver_options(&self, agents: &[&AgentSpec]) -> DriverOptions {
        self.driver_options_with(agents, &self.controller_dir())
    }

    /// [`Pki::driver_options`] with the `--agent-tls-dir` `tls`.
    pub fn driver_options_with(&self, agents: &[&AgentSpec], tls: &Path) -> DriverOptions {
        let file = self.dir.join("agents.json");
        let entries: Vec<_> = agents.iter().map(|a| a.entry()).collect();
        std::fs::write(&file, serde_json::json!({ "agents": entries }).to_string())
            .expect("agents file");
        DriverOptions::default().controller([
            "--agents".to_string(),
            file.display().to_string(),
            "--agent-tls-dir".to_string(),
            tls.display().to_string(),
        ])
    }
}

/// A running `carve-agent`, stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct Agent {
    /// What it serves.
    pub spec: AgentSpec,
    tls: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// Starts it with a certificate from `pki` naming its listen IP, logging and saving its LIO
    /// configuration in `dir`, and waits until it reports ready to a client of `pki`.
    pub async fn start(spec: AgentSpec, pki: &Pki, dir: &Path) -> Self {
        let tls = pki
            .issue(
                &format!("agent-{}", spec.name),
                &[&spec.listen.ip().to_string()],
            )
            .ca
            .parent()
            .expect("tls dir")
            .to_path_buf();
        let mut agent = Self {
            spec,
            tls,
            dir: dir.to_path_buf(),
            child: None,
        };
        agent.spawn(pki).await;
        agent
    }

    /// Starts it again after [`Agent::stop`] and waits until it is ready.
    pub async fn restart(&mut self, pki: &Pki) {
        self.stop();
        self.spawn(pki).await;
    }

    async fn spawn(&mut self, pki: &Pki) {
        let spec = &self.spec;
        let mut command = Command::new("carve-agent");
        command
            .args(["--listen", &spec.listen.to_string()])
            .arg("--tls-dir")
            .arg(&self.tls)
            .args(["--volume-group", &spec.vg, "--thin-pool", &spec.pool])
            .args(["--portal", &spec.portal, "--iqn-prefix", &spec.iqn_prefix()])
            .args(["--lio-backend", spec.lio_backend])
            .arg("--saveconfig")
            .arg(self.dir.join(format!("saveconfig-{}.json", spec.name)))
            .env("RUST_LOG", log_filter());
        self.child = Some(spawn_logged(command, &self.dir, &self.log_name()));
        wait_ready(self.spec.listen, &pki.controller_files(), || self.log()).await;
    }

    fn log_name(&self) -> String {
        format!("agent-{}.log", self.spec.name)
    }

    /// Its State answer to a client presenting `files`, or why there is none.
    pub async fn state(&self, files: &MtlsFiles) -> Result<StateResponse, String> {
        state(self.spec.listen, files).await
    }

    /// Whether anything accepts TCP connections on its address.
    pub fn listening(&self) -> bool {
        TcpStream::connect_timeout(&self.spec.listen, Duration::from_secs(1)).is_ok()
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s) and waits until it is gone.
    pub fn stop(&mut self) {
        stop(self.child.take());
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(self.log_name())).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- agent {} ---\n{}", self.spec.name, self.log());
        }
    }
}

/// The State answer of the agent at `listen` (its certificate naming that IP) to a client
/// presenting `files`, or why there is none: the connection, the TLS handshake or the RPC.
pub async fn state(listen: SocketAddr, files: &MtlsFiles) -> Result<StateResponse, String> {
    let mtls = files.load().map_err(|e| format!("client TLS files: {e}"))?;
    let channel = tokio::time::timeout(
        Duration::from_secs(10),
        connect(&listen.to_string(), &listen.ip().to_string(), &mtls),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect: {e:?}"))?;
    AgentClient::new(channel)
        .state(StateRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("State: {s:?}"))
}

/// Waits until the agent at `listen` reports ready to a client presenting `files`; panics
/// with `log()` after [`READY_WITHIN`].
pub async fn wait_ready(listen: SocketAddr, files: &MtlsFiles, log: impl Fn() -> String) {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        match state(listen, files).await {
            Ok(state) if state.ready => return,
            other => assert!(
                Instant::now() < deadline,
                "agent at {listen} not ready within {READY_WITHIN:?}: {other:?}\n{}",
                log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The agents' log filter: the plugins' ([`crate::driver::LOG_FILTER`], or `CARVE_TEST_LOG`)
/// with tonic's TLS accept errors, where a refused handshake shows (at debug, as "tls accept
/// error" with rustls' reason).
pub fn log_filter() -> String {
    let base = std::env::var("CARVE_TEST_LOG").unwrap_or_else(|_| crate::driver::LOG_FILTER.into());
    format!("{base},{TLS_ACCEPT_TARGET}=debug")
}

/// The tracing target of tonic's TLS accept loop (tonic 0.14, transport/server/io_stream.rs).
pub const TLS_ACCEPT_TARGET: &str = "tonic::transport::server::io_stream";

/// How many calls the agent whose log is `log` served: each ends with one "rpc succeeded" or
/// "rpc failed" line of csi-common's RPC layer (crate::driver::LOG_FILTER logs both).
pub fn served_rpcs(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("csi_common::telemetry: rpc succeeded")
                || l.contains("csi_common::telemetry: rpc failed")
        })
        .count()
}

/// Asserts a client presenting `files` is refused by the agent at `listen` (whose log `log`
/// reads, at [`log_filter`]) in the TLS handshake: its State call fails after the client's side
/// of the handshake completed (the alert unknown_ca, RFC 8446 6.2, or the connection the agent
/// closed on it, whichever the client reads first), the agent logs the refusal with rustls'
/// reason, and the call reaches no service of the agent.
pub async fn assert_refused(listen: SocketAddr, files: &MtlsFiles, log: impl Fn() -> String) {
    let refusals = |log: &str| {
        log.lines()
            .filter(|l| l.contains("tls accept error"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (served, before) = (served_rpcs(&log()), refusals(&log()).len());
    let refused = state(listen, files).await;
    let why = refused.expect_err("the agent served a client certificate its CA did not sign");
    assert!(
        why.contains("UnknownCA") || why.starts_with("State:"),
        "refused before the agent's side of the handshake (by this client, or no connection): {why}"
    );
    // Other refusals may be logged beside it (a bare TCP probe is "tls handshake eof").
    let issuer = |log: &str| {
        refusals(log)[before..]
            .iter()
            .any(|l| l.contains("UnknownIssuer"))
    };
    let logged = crate::eventually(10, || issuer(&log())).await;
    assert!(
        logged,
        "the agent logged no handshake refused for the certificate's issuer ({why}):\n{}",
        log()
    );
    assert_eq!(
        served_rpcs(&log()),
        served,
        "the call reached the agent: {why}"
    );
}
