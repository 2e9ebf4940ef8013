//! No secret reaches a log line or an error message across the fleet: CHAP secrets sent with
//! CreateVolume, ControllerPublishVolume (accepted, and refused by the agent) and DeleteVolume
//! travel CO → controller (its real gRPC server, RPC layer included) → agent → LIO, and the
//! controller's and the agent's tracing output at TRACE (tonic and h2 included, all in this
//! process) never holds one, nor does a publish_context or an error. Node-stage secrets go to
//! csi-node only (tests/inproc/tests/secrets.rs), never through the controller or an agent.

use super::{create_request, expect_absent, fleet, lv};
use crate::support::Script;
use csi_common::contract::{
    CHAP_MUTUAL_PASSWORD, CHAP_MUTUAL_USERNAME, CHAP_PASSWORD, CHAP_USERNAME,
};
use csi_common::endpoint::Endpoint;
use csi_controller::ops::testing::{NODE1, VG};
use csi_proto::v1::{
    ControllerPublishVolumeRequest, DeleteVolumeRequest, controller_server::ControllerServer,
};
use std::{collections::HashMap, time::Duration};
use tonic::{Request, service::Routes};

const SENTINEL: &str = "SENTINEL-s3cr3t-9f8e7d";
const MUTUAL: &str = "MUTUAL-s3cr3t-1a2b3c";

/// Mutual CHAP with the sentinels as passwords, and one more key holding a sentinel.
fn secrets() -> HashMap<String, String> {
    [
        (CHAP_USERNAME, "user"),
        (CHAP_PASSWORD, SENTINEL),
        (CHAP_MUTUAL_USERNAME, "tuser"),
        (CHAP_MUTUAL_PASSWORD, MUTUAL),
        ("anything", SENTINEL),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect()
}

fn publish(id: &str, secrets: HashMap<String, String>) -> Request<ControllerPublishVolumeRequest> {
    Request::new(ControllerPublishVolumeRequest {
        volume_id: id.into(),
        node_id: NODE1.into(),
        volume_capability: Some(super::ext4()),
        secrets,
        ..Default::default()
    })
}

// current_thread: the agents' servers run on this thread too, under the subscriber below.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_a_log_line_or_an_error_across_the_fleet() {
    let (captured, _guard) = csi_common::testing::logs::CapturedLogs::start();

    let f = fleet(&[("a", "", true), ("b", "", false)]).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::Unix(dir.path().join("csi.sock"));
    let routes = Routes::new(ControllerServer::new(f.svc.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            csi_common::serve::serve(&endpoint, routes, Duration::from_secs(30), stopped).await
        })
    };
    let client = carvectl::Client::connect_with_retry(&endpoint, Duration::from_secs(10));
    let mut c = client.await.unwrap().controller;
    let mut messages = Vec::new();
    let script = Script::new("v1");
    expect_absent(&f, &["a", "b"], "v1");
    script.expect_create(f.host("b"));
    let mut req = create_request("v1", &[("storageHosts", "b")]);
    req.secrets = secrets();
    let volume = c.create_volume(req).await.unwrap().into_inner().volume;
    let id = volume.unwrap().volume_id;
    assert_eq!(id, format!("b:{VG}:{}", lv("v1")));

    let b = f.host("b");
    b.expect_lvs_one(script.lv.as_str(), &[script.row(&[])]);
    let publication = format!("carve.pub=rw.chap:{NODE1}");
    b.expect_retag(script.lv.as_str(), &[], &["carve.used", &publication]);
    let context = super::ok(c.controller_publish_volume(publish(&id, secrets()))).await;
    let context = format!("{:?}", context.publish_context);
    assert!(
        !context.contains(SENTINEL) && !context.contains(MUTUAL),
        "{context}"
    );
    let tpg = b.lio.layout().tpg(b.target(script.lv.as_str()).as_str());
    let password = std::fs::read_to_string(tpg.join(format!("acls/{NODE1}/auth/password")));
    assert_eq!(
        password.unwrap(),
        SENTINEL,
        "the secret reached LIO on the agent"
    );

    // Refused by the agent: a secret that is not printable, one that is too short.
    for (key, bad) in [
        (CHAP_PASSWORD, format!("{SENTINEL}\n")),
        (CHAP_MUTUAL_PASSWORD, format!("{MUTUAL}\u{7f}")),
    ] {
        let mut secrets = secrets();
        secrets.insert(key.into(), bad);
        let refused = c.controller_publish_volume(publish(&id, secrets)).await;
        let status = refused.expect_err("a malformed secret");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        messages.push(format!("{status:?}"));
    }

    b.expect_lvs_one(&lv("gone"), &[]);
    let delete = DeleteVolumeRequest {
        volume_id: format!("b:{VG}:{}", lv("gone")),
        secrets: secrets(),
    };
    super::ok(c.delete_volume(Request::new(delete))).await;
    f.finish();
    drop((c, stop));
    server.await.unwrap().unwrap();

    let logs = captured.text();
    for both in ["ControllerPublishVolume", "carve.agent.v1"] {
        assert!(
            logs.contains(both),
            "the controller's and the agent's logs were captured ({both}):\n{logs}"
        );
    }
    for secret in [SENTINEL, MUTUAL] {
        assert!(!logs.contains(secret), "a secret reached the logs:\n{logs}");
        for message in &messages {
            assert!(
                !message.contains(secret),
                "a secret reached an error: {message}"
            );
        }
    }
}
