//! In-process tier: the controller started with an agents file (`--agents`, issue 19) as the
//! binary builds it: no storage host of its own (no LVM or LIO command, Probe ready), topology
//! constraints advertised when the agents have segments, an agent's volume UNAVAILABLE while
//! the agent is down; and every fault in the agents file or the TLS directory a start-up error
//! naming the file.

use carve_guest_tests::identity::{ready, services};
use carve_inproc_tests::{Served, controller_args};
use csi_common::{command::ScriptedRunner, testing::tls::Ca};
use csi_proto::v1::{ControllerGetVolumeRequest, plugin_capability::service::Type as ServiceType};
use std::{path::Path, sync::Arc};

/// A closed loopback port's `https://` address (nothing listens there).
async fn nowhere() -> String {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("https://{}", closed.local_addr().unwrap())
}

/// An agents file of agents `a` and `b`, each at a closed port, in zones when `zoned`; and a TLS
/// dir.
async fn files(dir: &Path, zoned: bool) -> (String, String) {
    let segments = |zone: &str| {
        if zoned {
            format!(r#", "segments": {{"topology.carve.dev/zone": "{zone}"}}"#)
        } else {
            String::new()
        }
    };
    let a = nowhere().await;
    let mut b = nowhere().await;
    while b == a {
        b = nowhere().await; // one address under two names is refused
    }
    let text = format!(
        r#"{{"agents": [
            {{"name": "a", "address": "{a}", "pools": ["vg0"]{}}},
            {{"name": "b", "address": "{b}", "pools": ["vg0"]{}}}
        ]}}"#,
        segments("a"),
        segments("b")
    );
    let file = dir.join("agents.json");
    std::fs::write(&file, text).unwrap();
    let ca = Ca::new("carve link CA");
    ca.files(&dir.join("tls"), &["controller"], &ca);
    let tls = dir.join("tls").to_str().unwrap().to_string();
    (file.to_str().unwrap().to_string(), tls)
}

#[tokio::test]
async fn with_agents_the_controller_drives_no_host_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (file, tls) = files(dir.path(), true).await;
    let runner = Arc::new(ScriptedRunner::new());
    // The storage host flags are ignored: this VG is never asked about.
    let flags = [
        "--agents",
        &file,
        "--agent-tls-dir",
        &tls,
        "--volume-group",
        "vg0",
    ];
    let built = csi_controller::server::build(&controller_args(&flags), runner.clone()).unwrap();
    assert!(built.host.is_none(), "no local host runtime with agents");
    let served = Served::start(built.routes).await;
    let constraints = ServiceType::VolumeAccessibilityConstraints as i32;
    assert!(services(&served.client).await.contains(&constraints));
    assert_eq!(ready(&served.client).await, Some(true));
    let req = ControllerGetVolumeRequest {
        volume_id: "b:vg0:csi-v-1".into(),
    };
    let err = served
        .client
        .controller
        .clone()
        .controller_get_volume(req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    served.shutdown().await;
    runner.finish();

    let dir = tempfile::tempdir().unwrap();
    let (file, tls) = files(dir.path(), false).await;
    let flags = ["--agents", &file, "--agent-tls-dir", &tls];
    let plain = Served::controller(&flags, Arc::new(ScriptedRunner::new())).await;
    assert!(
        !services(&plain.client).await.contains(&constraints),
        "no segments, no constraints"
    );
    plain.shutdown().await;
}

#[tokio::test]
async fn a_bad_agents_file_or_tls_dir_is_a_start_up_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (file, tls) = files(dir.path(), true).await;
    let build = |flags: &[&str]| {
        csi_controller::server::build(&controller_args(flags), Arc::new(ScriptedRunner::new()))
            .map(drop)
            .unwrap_err()
    };
    let missing = dir.path().join("none.json");
    let missing = missing.to_str().unwrap();
    let err = build(&["--agents", missing, "--agent-tls-dir", &tls]);
    assert!(err.message().contains(missing), "{err}");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"agents\": [\n  {\"name\": \"a\",}\n]}").unwrap();
    let bad = bad.to_str().unwrap();
    let err = build(&["--agents", bad, "--agent-tls-dir", &tls]);
    assert!(
        err.message().contains(bad) && err.message().contains("line 2"),
        "{err}"
    );

    let no_tls = dir.path().join("no-tls");
    let err = build(&[
        "--agents",
        &file,
        "--agent-tls-dir",
        no_tls.to_str().unwrap(),
    ]);
    assert!(err.message().contains("ca.crt"), "{err}");

    let both: Result<csi_controller::config::ControllerArgs, _> = clap::Parser::try_parse_from([
        "csi-controller",
        "--agents",
        &file,
        "--accessible-topology",
        "topology.carve.dev/zone=a",
    ]);
    assert!(
        both.is_err(),
        "the agents' segments replace --accessible-topology"
    );
}
