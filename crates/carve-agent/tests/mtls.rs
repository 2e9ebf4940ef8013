//! The agent as the binary assembles it (`server::build` over csi-controller's host runtime,
//! `server::run` with mutual TLS), on loopback: a controller whose certificate the CA signed is
//! served; one whose certificate another CA signed, or a self-signed impostor of the CA, is
//! refused in the handshake, before any RPC.

mod support;

use carve_agent::{config::AgentArgs, proto, server};
use clap::Parser;
use csi_common::command::ScriptedRunner;
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
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server::run(agent, listener, &mtls, Duration::from_secs(5), async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (address, stop)
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

#[tokio::test]
async fn the_cas_client_is_served_and_a_foreign_or_forged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, foreign) = (Ca::new("carve link CA"), Ca::new("someone else"));
    let (address, _stop) = real_agent(&ca, dir.path()).await;

    let controller = ca.files(&dir.path().join("controller"), &["controller"], &ca);
    let answer = state(&address, &controller).await.unwrap();
    assert!(!answer.ready, "no volume group configured: {answer:?}");
    assert!(!answer.not_ready.is_empty(), "says why: {answer:?}");
    assert_eq!(answer.portals, ["127.0.0.1:3260"]);

    // Signed by another CA, even one that trusts the agent: refused.
    let stranger = foreign.files(&dir.path().join("stranger"), &["controller"], &ca);
    let refused = state(&address, &stranger).await.unwrap_err();
    assert!(refused.contains("UnknownCA"), "{refused}");

    // Self-signed under the CA's own name: refused as well.
    let impostor = Ca::new("carve link CA");
    let forged = impostor.files(&dir.path().join("forged"), &["controller"], &ca);
    let refused = state(&address, &forged).await.unwrap_err();
    assert!(refused.contains("DecryptError"), "{refused}");
}

#[tokio::test]
async fn the_agent_must_be_the_one_the_ca_signed_for_that_name() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, foreign) = (Ca::new("carve link CA"), Ca::new("someone else"));
    let (address, _stop) = real_agent(&ca, dir.path()).await;
    // A controller that trusts only another CA does not talk to this agent.
    let wary = ca.files(&dir.path().join("wary"), &["controller"], &foreign);
    let refused = state(&address, &wary).await.unwrap_err();
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
