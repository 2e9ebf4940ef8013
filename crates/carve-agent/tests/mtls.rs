//! The agent as the binary assembles it (`server::build` over csi-controller's host runtime,
//! `server::run` with mutual TLS), on loopback: a controller whose certificate the CA signed is
//! served; one whose certificate another CA signed, or a self-signed impostor of the CA, is
//! refused in the handshake, before any RPC.

mod support;

use carve_agent::{config::AgentArgs, proto, server};
use clap::Parser;
use csi_common::{command::ScriptedRunner, testing::tls::spawn_server};
use std::{sync::Arc, time::Duration};
use support::{AGENT_NAME, Ca, client};

/// The real agent (no volume group: it serves and says it is not ready) on a loopback port.
async fn real_agent(ca: &Ca, dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    real_agent_with(ca, dir, &[], |_| {}).await
}

/// The real agent with `extra` flags, `before` run on it before it serves.
async fn real_agent_with(
    ca: &Ca,
    dir: &std::path::Path,
    extra: &[&str],
    before: impl FnOnce(&server::Agent),
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let configfs = dir.join("configfs");
    std::fs::create_dir_all(&configfs).unwrap();
    let tls = dir.join("agent");
    ca.files(&tls, &[AGENT_NAME], ca);
    let args = AgentArgs::try_parse_from(
        [
            "carve-agent",
            "--listen",
            "127.0.0.1:0",
            "--tls-dir",
            tls.to_str().unwrap(),
            "--configfs-root",
            configfs.to_str().unwrap(),
            "--saveconfig",
            dir.join("saveconfig.json").to_str().unwrap(),
            "--portal",
            "127.0.0.1:3260",
        ]
        .into_iter()
        .chain(extra.iter().copied()),
    )
    .unwrap();
    let mtls = args.tls_files().load().unwrap();
    let runner = Arc::new(ScriptedRunner::new());
    let agent = server::build(&args, runner).unwrap();
    before(&agent);
    let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap();
    spawn_server(listener, |listener, stopped| async move {
        server::run(agent, listener, &mtls, Duration::from_secs(5), stopped).await
    })
}

/// State over a fresh connection presenting `files`, or the failure as text.
async fn state(
    address: &str,
    files: &csi_common::mtls::MtlsFiles,
) -> Result<proto::StateResponse, String> {
    let mut agent = client(address, files)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    agent
        .state(proto::StateRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("rpc: {s:?}"))
}

/// The real agent with a certificate the link's CA signed, that CA, a foreign one, and where
/// the clients' certificates go. The agent stops when this is dropped.
struct Served {
    dir: tempfile::TempDir,
    ca: Ca,
    foreign: Ca,
    address: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Served {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, foreign) = (Ca::new("carve link CA"), Ca::new("someone else"));
        let (address, stop) = real_agent(&ca, dir.path()).await;
        Self {
            dir,
            ca,
            foreign,
            address,
            _stop: stop,
        }
    }

    /// State presenting a certificate for "controller" that `signer` signed, trusting
    /// `trusting` (its files under `name`); or the failure as text.
    async fn state(
        &self,
        name: &str,
        signer: &Ca,
        trusting: &Ca,
    ) -> Result<proto::StateResponse, String> {
        let files = signer.files(&self.dir.path().join(name), &["controller"], trusting);
        state(&self.address, &files).await
    }
}

#[tokio::test]
async fn the_cas_client_is_served_and_a_foreign_or_forged_one_is_refused() {
    let served = Served::new().await;
    let (ca, foreign) = (&served.ca, &served.foreign);

    let answer = served.state("controller", ca, ca).await.unwrap();
    assert!(!answer.ready, "no volume group configured: {answer:?}");
    assert!(!answer.not_ready.is_empty(), "says why: {answer:?}");
    assert_eq!(answer.portals, ["127.0.0.1:3260"]);

    // Signed by another CA, even one that trusts the agent: refused.
    let refused = served.state("stranger", foreign, ca).await.unwrap_err();
    assert!(refused.contains("UnknownCA"), "{refused}");

    // Self-signed under the CA's own name: refused as well.
    let impostor = Ca::new("carve link CA");
    let refused = served.state("forged", &impostor, ca).await.unwrap_err();
    assert!(refused.contains("DecryptError"), "{refused}");
}

#[tokio::test]
async fn the_agent_must_be_the_one_the_ca_signed_for_that_name() {
    let served = Served::new().await;
    // A controller that trusts only another CA does not talk to this agent.
    let refused = served
        .state("wary", &served.ca, &served.foreign)
        .await
        .unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}

#[tokio::test]
async fn volumes_not_restored_yet_are_unavailable_until_reconciliation_completes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("carve link CA");
    // As `server::run` leaves it while start-up reconciliation runs (not started here: the
    // scripted runner would be asked for LVM reports).
    let (address, _stop) = real_agent_with(&ca, dir.path(), &["--volume-group", "vg0"], |agent| {
        agent.host.restoration.expect();
    })
    .await;
    let controller = ca.files(&dir.path().join("controller"), &["controller"], &ca);
    let mut agent = client(&address, &controller).await.unwrap();
    let delete = proto::DeleteVolumeRequest {
        volume_id: "csi-v-1".into(),
    };
    let refused = agent.delete_volume(delete).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let list = agent
        .list_volumes(proto::ListVolumesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(list.code(), tonic::Code::Unavailable, "{list:?}");
    let state = agent
        .state(proto::StateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!state.ready, "{state:?}");
    assert_eq!(state.volume_group, "vg0");
}
