//! End-to-end tests of the library and the command line against an in-process fake CSI
//! plugin (Identity, Controller, Node; see `fake_plugin`) served on a unix socket in a temporary
//! directory.

mod fake_plugin;

use std::time::Duration;

use carvectl::{Client, Endpoint};
use csi_proto::v1::identity_server::IdentityServer;
use csi_proto::v1::*;
use serde_json::json;

use fake_plugin::{Fake, cli, parse_json, serve_at, start};

#[tokio::test]
async fn library_round_trip() {
    let server = start(Fake::default());
    let client = Client::connect(&server.endpoint).await.unwrap();
    let (mut identity, mut node) = (client.identity.clone(), client.node.clone());
    let info = identity.get_plugin_info(GetPluginInfoRequest {}).await;
    assert_eq!(info.unwrap().into_inner().name, "carve.example.com");
    let node = node.node_get_info(NodeGetInfoRequest {}).await;
    let node = node.unwrap().into_inner();
    assert_eq!(node.node_id, "node-1");
    assert_eq!(node.max_volumes_per_node, 64);
    let mut controller = client.controller.clone();
    let status = controller
        .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest::default())
        .await;
    assert_eq!(status.unwrap_err().code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn connect_with_retry_waits_for_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("late.sock");
    let endpoint = Endpoint::Unix(socket.clone());
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        serve_at(Fake::default(), &socket);
    });
    let client = Client::wait_until_ready(&endpoint, Duration::from_secs(10))
        .await
        .unwrap();
    late.await.unwrap();
    let caps = client
        .node
        .clone()
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap();
    assert_eq!(caps.into_inner().capabilities.len(), 1);

    let missing = Endpoint::Unix(dir.path().join("never.sock"));
    let started = std::time::Instant::now();
    let error = carvectl::connect_with_retry(&missing, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.to_string().contains("never.sock"), "{error}");
}

#[tokio::test]
async fn wait_until_ready_gives_up_on_a_plugin_that_is_not_ready() {
    let server = start(Fake {
        ready: Some(false),
        ..Default::default()
    });
    let error = Client::wait_until_ready(&server.endpoint, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(error, carvectl::ConnectError::NotReady { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn identity_commands() {
    let server = start(Fake::default());
    let (code, out, err) = cli(&server, &["--json", "identity", "info"]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        parse_json(&out),
        json!({ "name": "carve.example.com", "vendor_version": "0.1.0", "manifest": { "commit": "abc" } })
    );

    let (code, out, _) = cli(&server, &["identity", "info"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "manifest:\n  commit: abc\nname:           carve.example.com\nvendor_version: 0.1.0\n"
    );

    let (code, out, _) = cli(&server, &["identity", "capabilities", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        parse_json(&out),
        json!({ "capabilities": [ { "service": "CONTROLLER_SERVICE" } ] })
    );

    let (code, out, _) = cli(&server, &["identity", "probe"]).await;
    assert_eq!((code, out.as_str()), (0, "ready: <unset>\n"));

    let not_ready = start(Fake {
        ready: Some(false),
        ..Default::default()
    });
    let (code, out, _) = cli(&not_ready, &["identity", "probe", "--json"]).await;
    assert_eq!((code, parse_json(&out)), (3, json!({ "ready": false })));
}

#[tokio::test]
async fn create_publish_pipeline_json() {
    let server = start(Fake::default());
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"chap-password": "s3cret-file"}"#).unwrap();
    let secrets_flag = format!("--secrets-file={}", secrets.display());

    let (code, out, err) = cli(
        &server,
        &[
            "-v",
            "--json",
            "controller",
            "create-volume",
            "--name=pvc-1",
            "--capacity=2Gi",
            "--param=pool=fast",
            "--secret=user=s3cret-flag",
            &secrets_flag,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let value = parse_json(&out);
    assert_eq!(value["volume"]["volume_id"], "vol-pvc-1");
    assert_eq!(value["volume"]["capacity_bytes"], 2i64 << 30);
    assert_eq!(value["volume"]["volume_context"], json!({ "pool": "fast" }));
    // Secrets reached the plugin, but the verbose trace shows only the redacted request.
    let seen = server.seen.lock().unwrap().secrets.clone();
    assert_eq!(seen["user"], "s3cret-flag");
    assert_eq!(seen["chap-password"], "s3cret-file");
    assert!(
        err.contains("CreateVolumeRequest") && err.contains("pvc-1"),
        "{err}"
    );
    assert!(
        !err.contains("s3cret") && !out.contains("s3cret"),
        "secret printed: {err}"
    );

    let (code, out, _) = cli(
        &server,
        &[
            "--json",
            "controller",
            "publish",
            "vol-pvc-1",
            "--node-id=node-1",
            "--readonly",
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        parse_json(&out),
        json!({ "publish_context": { "lun": "3", "node": "node-1", "readonly": "true" } })
    );

    let (code, out, err) = cli(
        &server,
        &[
            "node",
            "stage",
            "vol-pvc-1",
            "--staging-path=/s",
            "--publish-context=lun=3",
            "--secret=k=v",
        ],
    )
    .await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "volume vol-pvc-1 staged at /s\n", "")
    );
    assert_eq!(server.seen.lock().unwrap().secrets["k"], "v");

    let (code, out, _) = cli(
        &server,
        &[
            "--json",
            "node",
            "unstage",
            "vol-pvc-1",
            "--staging-path=/s",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "{}\n"));
}

#[tokio::test]
async fn rpc_errors_map_to_exit_codes() {
    let server = start(Fake::default());
    let (code, out, err) = cli(&server, &["controller", "delete-volume", "vol-9"]).await;
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (15, "", "error: NOT_FOUND: no volume vol-9\n")
    );

    let (code, out, _) = cli(&server, &["controller", "delete-volume", "vol-1"]).await;
    assert_eq!((code, out.as_str()), (0, "volume vol-1 deleted\n"));

    // RPCs the fake leaves unimplemented.
    for (args, rpc) in [
        (
            &["controller", "validate", "v", "--fs-type=ext4"][..],
            "validate",
        ),
        (&["controller", "get-snapshot", "s"][..], "get_snapshot"),
    ] {
        let (code, _, err) = cli(&server, args).await;
        let unimplemented = format!("error: UNIMPLEMENTED: {rpc}\n");
        assert_eq!((code, err.as_str()), (22, unimplemented.as_str()));
    }
}

#[tokio::test]
async fn list_volumes_pages_and_follows_tokens() {
    let server = start(Fake::default());
    let (code, out, _) = cli(&server, &["--json", "controller", "list-volumes"]).await;
    assert_eq!(code, 0);
    let page = parse_json(&out);
    assert_eq!(page["next_token"], "1");
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    assert_eq!(
        page["entries"][0]["status"]["published_node_ids"],
        json!(["node-1"])
    );

    let (code, out, _) = cli(&server, &["--json", "controller", "list-volumes", "--all"]).await;
    assert_eq!(code, 0);
    let all = parse_json(&out);
    let ids: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["volume"]["volume_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        (ids, all["next_token"].as_str()),
        (vec!["a", "b", "c"], Some(""))
    );
    assert_eq!(server.seen.lock().unwrap().list_tokens, ["", "", "1", "2"]);

    let (code, out, _) = cli(
        &server,
        &["controller", "list-volumes", "--starting-token=2"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "VOLUME_ID  CAPACITY  PUBLISHED_NODES  CONDITION\nc          1 MiB     node-1\n"
    );
}

#[tokio::test]
async fn node_commands_render() {
    let server = start(Fake::default());
    let (code, out, _) = cli(&server, &["node", "stats", "v", "--volume-path=/t"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "\
usage:
  - available: 3221225472 (3 GiB)
    total:     4294967296 (4 GiB)
    unit:      BYTES
    used:      1073741824 (1 GiB)
volume_condition:
  abnormal: true
  message:  read errors
"
    );
    let (code, out, _) = cli(&server, &["--json", "node", "info"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        parse_json(&out),
        json!({ "node_id": "node-1", "max_volumes_per_node": 64, "accessible_topology": { "segments": { "zone": "a" } } })
    );
    let (code, out, _) = cli(
        &server,
        &[
            "--json",
            "node",
            "expand",
            "v",
            "--volume-path=/t",
            "--capacity=2Gi",
        ],
    )
    .await;
    assert_eq!(
        (code, parse_json(&out)),
        (0, json!({ "capacity_bytes": 2i64 << 30 }))
    );
    let (code, out, _) = cli(&server, &["node", "capabilities"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "capabilities:\n  - rpc: STAGE_UNSTAGE_VOLUME\n")
    );
}

#[tokio::test]
async fn usage_and_transport_errors() {
    let server = start(Fake::default());
    let (code, out, err) = cli(
        &server,
        &["controller", "create-volume", "--name=x", "--capacity=lots"],
    )
    .await;
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("unknown size suffix"), "{err}");

    let (code, _, err) = cli(
        &server,
        &[
            "node",
            "stage",
            "v",
            "--staging-path=/s",
            "--secret=novalue",
        ],
    )
    .await;
    assert_eq!(code, 2);
    assert_eq!(err, "error: --secret #1 is not key=value\n");

    let (code, out, _) = cli(&server, &["--help"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("EXIT STATUS") && out.contains("15 NOT_FOUND"),
        "{out}"
    );
    let (code, out, _) = cli(&server, &["controller", "create-volume", "--help"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("--secrets-file") && out.contains("--access-mode"),
        "{out}"
    );

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args = [
        "carvectl",
        "--endpoint=unix:///nonexistent/csi.sock",
        "identity",
        "probe",
    ];
    let code = carvectl::run(args, &mut out, &mut err).await;
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot connect to unix:///nonexistent/csi.sock"),
        "{err}"
    );

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = carvectl::run(
        ["carvectl", "--endpoint=http://x", "identity", "probe"],
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, 2);
}

#[tokio::test]
async fn slow_rpcs_hit_the_deadline() {
    let server = start(Fake::default());
    let endpoint = format!("--endpoint={}", server.endpoint);
    let args = [
        "carvectl",
        endpoint.as_str(),
        "--timeout=1",
        "node",
        "publish",
        "v",
        "--target-path=/slow",
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let started = std::time::Instant::now();
    let code = carvectl::run(args, &mut out, &mut err).await;
    let err = String::from_utf8(err).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(code, 14, "{err}");
    assert!(err.starts_with("error: DEADLINE_EXCEEDED: "), "{err}");
}

#[tokio::test]
async fn tcp_endpoints_work() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(Fake::default()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let endpoint: Endpoint = format!("tcp://{address}").parse().unwrap();
    let client = Client::connect(&endpoint).await.unwrap();
    let mut identity = client.identity.clone();
    let info = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap();
    assert_eq!(info.into_inner().vendor_version, "0.1.0");
}

#[tokio::test]
async fn orphans_follow_every_page_and_compare_with_the_pvs() {
    let server = start(Fake::default());
    let dir = tempfile::tempdir().unwrap();
    let pvs = dir.path().join("pvs.json");
    let pv = |name: &str, handle: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
               "spec": {"csi": {"driver": "lvm-iscsi.csi.carve.dev", "volumeHandle": handle}}})
    };
    let list = json!({"apiVersion": "v1", "kind": "List",
                      "items": [pv("pv-a", "a"), pv("pv-c", "c"), pv("pv-x", "x")]});
    std::fs::write(&pvs, list.to_string()).unwrap();
    let file = format!("--pvs={}", pvs.display());
    let (code, out, err) = cli(&server, &["--json", "orphans", &file]).await;
    assert_eq!(code, 4, "found something: {err}");
    let report = parse_json(&out);
    assert_eq!(report["listed_volumes"], 3, "all three pages: {report}");
    assert_eq!(report["orphans"][0]["volume_id"], "b");
    assert_eq!(
        report["orphans"][0]["published_node_ids"],
        json!(["node-1"])
    );
    assert_eq!(report["orphans"].as_array().unwrap().len(), 1);
    assert_eq!(
        report["missing"],
        json!([{"persistent_volume": "pv-x", "volume_handle": "x"}])
    );
    assert_eq!(server.seen.lock().unwrap().list_tokens, ["", "1", "2"]);

    let (code, out, _) = cli(&server, &["orphans", &file]).await;
    assert_eq!(code, 4);
    assert!(
        out.contains("ORPHAN_VOLUME") && out.contains("pv-x"),
        "{out}"
    );

    let all = json!({"kind": "List", "items": [pv("pv-a", "a"), pv("pv-b", "b"), pv("pv-c", "c")]});
    std::fs::write(&pvs, all.to_string()).unwrap();
    let (code, out, _) = cli(&server, &["orphans", &file]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("0 orphan volume(s), 0 "), "{out}");

    std::fs::write(&pvs, r#"{"kind":"PodList","items":[]}"#).unwrap();
    let (code, _, err) = cli(&server, &["orphans", &file]).await;
    assert_eq!(
        code, 2,
        "not PersistentVolumes: a usage error, not an empty set"
    );
    assert!(err.contains("PersistentVolumes"), "{err}");
}
