//! The fake CSI plugin the end-to-end tests run against (Identity, Controller, Node, with canned
//! answers and a record of what it saw) and the harness around it: [`start`] it on a unix socket
//! in a temporary directory, run the command line against it with [`cli`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carvectl::Endpoint;
use csi_proto::v1::controller_server::{Controller, ControllerServer};
use csi_proto::v1::identity_server::{Identity, IdentityServer};
use csi_proto::v1::node_server::{Node, NodeServer};
use csi_proto::v1::*;
use serde_json::Value;
use tonic::{Request, Response, Status};

type Rpc<T> = Result<Response<T>, Status>;

/// What the fake saw, for assertions.
#[derive(Default)]
pub struct Seen {
    /// The secrets of the last CreateVolume or NodeStageVolume.
    pub secrets: HashMap<String, String>,
    /// The starting_token of every ListVolumes, in order.
    pub list_tokens: Vec<String>,
}

/// The fake plugin: canned answers, UNIMPLEMENTED for the RPCs no test needs.
#[derive(Clone, Default)]
pub struct Fake {
    /// What Probe answers.
    pub ready: Option<bool>,
    /// What the fake saw.
    pub seen: Arc<Mutex<Seen>>,
}

#[tonic::async_trait]
impl Identity for Fake {
    async fn get_plugin_info(
        &self,
        _: Request<GetPluginInfoRequest>,
    ) -> Rpc<GetPluginInfoResponse> {
        Ok(Response::new(GetPluginInfoResponse {
            name: "carve.example.com".into(),
            vendor_version: "0.1.0".into(),
            manifest: HashMap::from([("commit".into(), "abc".into())]),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<GetPluginCapabilitiesRequest>,
    ) -> Rpc<GetPluginCapabilitiesResponse> {
        use plugin_capability::{Service, Type, service};
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![PluginCapability {
                r#type: Some(Type::Service(Service {
                    r#type: service::Type::ControllerService as i32,
                })),
            }],
        }))
    }

    async fn probe(&self, _: Request<ProbeRequest>) -> Rpc<ProbeResponse> {
        Ok(Response::new(ProbeResponse { ready: self.ready }))
    }
}

// Controller handlers with canned answers; they share the shape `csi_common::grpc_service!`
// calls.
#[allow(
    clippy::unnecessary_wraps,
    clippy::unused_self,
    clippy::needless_pass_by_value
)]
impl Fake {
    fn create(&self, request: CreateVolumeRequest) -> Result<CreateVolumeResponse, Status> {
        self.seen
            .lock()
            .unwrap()
            .secrets
            .clone_from(&request.secrets);
        if request.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities missing"));
        }
        let capacity = request.capacity_range.map_or(1 << 30, |r| r.required_bytes);
        Ok(CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes: capacity,
                volume_id: format!("vol-{}", request.name),
                volume_context: HashMap::from([(
                    "pool".into(),
                    request.parameters.get("pool").cloned().unwrap_or_default(),
                )]),
                content_source: None,
                accessible_topology: vec![],
            }),
        })
    }

    fn delete(&self, request: DeleteVolumeRequest) -> Result<DeleteVolumeResponse, Status> {
        match request.volume_id.as_str() {
            "vol-1" => Ok(DeleteVolumeResponse {}),
            other => Err(Status::not_found(format!("no volume {other}"))),
        }
    }

    fn publish(
        &self,
        request: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse, Status> {
        Ok(ControllerPublishVolumeResponse {
            publish_context: HashMap::from([
                ("node".into(), request.node_id),
                ("readonly".into(), request.readonly.to_string()),
                ("lun".into(), "3".into()),
            ]),
        })
    }

    /// Three pages: tokens "" -> "1" -> "2" -> end.
    fn list(&self, request: ListVolumesRequest) -> Result<ListVolumesResponse, Status> {
        let token = request.starting_token;
        self.seen.lock().unwrap().list_tokens.push(token.clone());
        let (id, next) = match token.as_str() {
            "" => ("a", "1"),
            "1" => ("b", "2"),
            "2" => ("c", ""),
            _ => return Err(Status::aborted("bad token")),
        };
        Ok(ListVolumesResponse {
            entries: vec![list_volumes_response::Entry {
                volume: Some(Volume {
                    volume_id: id.into(),
                    capacity_bytes: 1 << 20,
                    ..Default::default()
                }),
                status: Some(list_volumes_response::VolumeStatus {
                    published_node_ids: vec!["node-1".into()],
                    volume_condition: None,
                }),
            }],
            next_token: next.into(),
        })
    }
}

/// Handlers that answer the same whatever the request: UNIMPLEMENTED for the RPCs no test
/// needs (with the message the tests expect), an empty response where a test needs nothing more.
macro_rules! canned_handlers {
    ($($handler:ident($req:ty) -> $resp:ty = $answer:expr;)*) => {
        impl Fake {
            $(
                #[allow(clippy::unused_self, clippy::unnecessary_wraps)] // the shape of every handler
                fn $handler(&self, _: $req) -> Result<$resp, Status> {
                    $answer
                }
            )*
        }
    };
}

canned_handlers! {
    unpublish(ControllerUnpublishVolumeRequest) -> ControllerUnpublishVolumeResponse = Ok(ControllerUnpublishVolumeResponse {});
    validate(ValidateVolumeCapabilitiesRequest) -> ValidateVolumeCapabilitiesResponse = Err(Status::unimplemented("validate"));
    capacity(GetCapacityRequest) -> GetCapacityResponse = Err(Status::unimplemented("get_capacity"));
    capabilities(ControllerGetCapabilitiesRequest) -> ControllerGetCapabilitiesResponse = Err(Status::unimplemented("capabilities"));
    take_snapshot(CreateSnapshotRequest) -> CreateSnapshotResponse = Err(Status::unimplemented("create_snapshot"));
    remove_snapshot(DeleteSnapshotRequest) -> DeleteSnapshotResponse = Err(Status::unimplemented("delete_snapshot"));
    snapshots(ListSnapshotsRequest) -> ListSnapshotsResponse = Err(Status::unimplemented("list_snapshots"));
    snapshot(GetSnapshotRequest) -> GetSnapshotResponse = Err(Status::unimplemented("get_snapshot"));
    expand(ControllerExpandVolumeRequest) -> ControllerExpandVolumeResponse = Err(Status::unimplemented("expand"));
    get(ControllerGetVolumeRequest) -> ControllerGetVolumeResponse = Err(Status::unimplemented("get_volume"));
    modify(ControllerModifyVolumeRequest) -> ControllerModifyVolumeResponse = Err(Status::unimplemented("modify"));
    unstage(NodeUnstageVolumeRequest) -> NodeUnstageVolumeResponse = Ok(NodeUnstageVolumeResponse {});
    node_unpublish(NodeUnpublishVolumeRequest) -> NodeUnpublishVolumeResponse = Ok(NodeUnpublishVolumeResponse {});
}

csi_common::grpc_service! {
    impl Controller for Fake {
        create_volume(CreateVolumeRequest) -> CreateVolumeResponse = create;
        delete_volume(DeleteVolumeRequest) -> DeleteVolumeResponse = delete;
        controller_publish_volume(ControllerPublishVolumeRequest) -> ControllerPublishVolumeResponse = publish;
        controller_unpublish_volume(ControllerUnpublishVolumeRequest) -> ControllerUnpublishVolumeResponse = unpublish;
        validate_volume_capabilities(ValidateVolumeCapabilitiesRequest) -> ValidateVolumeCapabilitiesResponse = validate;
        list_volumes(ListVolumesRequest) -> ListVolumesResponse = list;
        get_capacity(GetCapacityRequest) -> GetCapacityResponse = capacity;
        controller_get_capabilities(ControllerGetCapabilitiesRequest) -> ControllerGetCapabilitiesResponse = capabilities;
        create_snapshot(CreateSnapshotRequest) -> CreateSnapshotResponse = take_snapshot;
        delete_snapshot(DeleteSnapshotRequest) -> DeleteSnapshotResponse = remove_snapshot;
        list_snapshots(ListSnapshotsRequest) -> ListSnapshotsResponse = snapshots;
        get_snapshot(GetSnapshotRequest) -> GetSnapshotResponse = snapshot;
        controller_expand_volume(ControllerExpandVolumeRequest) -> ControllerExpandVolumeResponse = expand;
        controller_get_volume(ControllerGetVolumeRequest) -> ControllerGetVolumeResponse = get;
        controller_modify_volume(ControllerModifyVolumeRequest) -> ControllerModifyVolumeResponse = modify;
    }
}

// Node handlers answer canned responses; they share the shape `csi_common::grpc_service!` calls.
#[allow(
    clippy::unnecessary_wraps,
    clippy::unused_self,
    clippy::needless_pass_by_value
)]
impl Fake {
    fn stage(&self, request: NodeStageVolumeRequest) -> Result<NodeStageVolumeResponse, Status> {
        self.seen.lock().unwrap().secrets = request.secrets;
        Ok(NodeStageVolumeResponse {})
    }

    async fn node_publish(
        &self,
        request: NodePublishVolumeRequest,
    ) -> Result<NodePublishVolumeResponse, Status> {
        if request.target_path == "/slow" {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(NodePublishVolumeResponse {})
    }

    fn stats(&self, _: NodeGetVolumeStatsRequest) -> Result<NodeGetVolumeStatsResponse, Status> {
        Ok(NodeGetVolumeStatsResponse {
            usage: vec![VolumeUsage {
                available: 3 << 30,
                total: 4 << 30,
                used: 1 << 30,
                unit: volume_usage::Unit::Bytes as i32,
            }],
            volume_condition: Some(VolumeCondition {
                abnormal: true,
                message: "read errors".into(),
            }),
        })
    }

    fn node_expand(&self, _: NodeExpandVolumeRequest) -> Result<NodeExpandVolumeResponse, Status> {
        Ok(NodeExpandVolumeResponse {
            capacity_bytes: 2 << 30,
        })
    }

    fn node_capabilities(
        &self,
        _: NodeGetCapabilitiesRequest,
    ) -> Result<NodeGetCapabilitiesResponse, Status> {
        use node_service_capability::{Rpc as RpcCap, Type, rpc};
        let stage_unstage = RpcCap {
            r#type: rpc::Type::StageUnstageVolume as i32,
        };
        Ok(NodeGetCapabilitiesResponse {
            capabilities: vec![NodeServiceCapability {
                r#type: Some(Type::Rpc(stage_unstage)),
            }],
        })
    }

    fn info(&self, _: NodeGetInfoRequest) -> Result<NodeGetInfoResponse, Status> {
        Ok(NodeGetInfoResponse {
            node_id: "node-1".into(),
            max_volumes_per_node: 64,
            accessible_topology: Some(Topology {
                segments: HashMap::from([("zone".into(), "a".into())]),
            }),
        })
    }
}

csi_common::grpc_service! {
    impl Node for Fake {
        node_stage_volume(NodeStageVolumeRequest) -> NodeStageVolumeResponse = stage;
        node_unstage_volume(NodeUnstageVolumeRequest) -> NodeUnstageVolumeResponse = unstage;
        node_publish_volume(NodePublishVolumeRequest) -> NodePublishVolumeResponse = node_publish.await;
        node_unpublish_volume(NodeUnpublishVolumeRequest) -> NodeUnpublishVolumeResponse = node_unpublish;
        node_get_volume_stats(NodeGetVolumeStatsRequest) -> NodeGetVolumeStatsResponse = stats;
        node_expand_volume(NodeExpandVolumeRequest) -> NodeExpandVolumeResponse = node_expand;
        node_get_capabilities(NodeGetCapabilitiesRequest) -> NodeGetCapabilitiesResponse = node_capabilities;
        node_get_info(NodeGetInfoRequest) -> NodeGetInfoResponse = info;
    }
}

/// A running fake: its socket, its endpoint and what it saw.
pub struct Server {
    _dir: tempfile::TempDir,
    /// Where it listens: the unix socket `csi.sock` in its temporary directory.
    pub endpoint: Endpoint,
    /// What it saw (shared with the [`Fake`] it serves).
    pub seen: Arc<Mutex<Seen>>,
}

/// Serves `fake` (Identity, Controller, Node) on a unix socket at `socket`, in the background.
pub fn serve_at(fake: Fake, socket: &std::path::Path) {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(fake.clone()))
            .add_service(ControllerServer::new(fake.clone()))
            .add_service(NodeServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
}

/// Starts `fake` on a socket in a new temporary directory.
pub fn start(fake: Fake) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("csi.sock");
    let seen = fake.seen.clone();
    serve_at(fake, &socket);
    Server {
        _dir: dir,
        endpoint: Endpoint::Unix(socket),
        seen,
    }
}

/// Runs the command line against `server`; returns (exit status, stdout, stderr).
pub async fn cli(server: &Server, args: &[&str]) -> (u8, String, String) {
    let endpoint = format!("--endpoint={}", server.endpoint);
    let argv = ["carvectl", endpoint.as_str(), "--timeout=5"]
        .into_iter()
        .chain(args.iter().copied());
    let out = carvectl::run_captured(argv).await;
    (out.code, out.stdout, out.stderr)
}

/// `stdout` of a `--json` run: exactly one line, one JSON object.
pub fn parse_json(stdout: &str) -> Value {
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object per line: {stdout}"
    );
    serde_json::from_str(stdout).unwrap()
}
