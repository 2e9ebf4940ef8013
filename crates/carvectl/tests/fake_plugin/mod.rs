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

#[tonic::async_trait]
impl Controller for Fake {
    async fn create_volume(
        &self,
        request: Request<CreateVolumeRequest>,
    ) -> Rpc<CreateVolumeResponse> {
        let request = request.into_inner();
        self.seen
            .lock()
            .unwrap()
            .secrets
            .clone_from(&request.secrets);
        if request.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities missing"));
        }
        let capacity = request.capacity_range.map_or(1 << 30, |r| r.required_bytes);
        Ok(Response::new(CreateVolumeResponse {
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
        }))
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> Rpc<DeleteVolumeResponse> {
        match request.get_ref().volume_id.as_str() {
            "vol-1" => Ok(Response::new(DeleteVolumeResponse {})),
            other => Err(Status::not_found(format!("no volume {other}"))),
        }
    }

    async fn controller_publish_volume(
        &self,
        request: Request<ControllerPublishVolumeRequest>,
    ) -> Rpc<ControllerPublishVolumeResponse> {
        let request = request.into_inner();
        Ok(Response::new(ControllerPublishVolumeResponse {
            publish_context: HashMap::from([
                ("node".into(), request.node_id),
                ("readonly".into(), request.readonly.to_string()),
                ("lun".into(), "3".into()),
            ]),
        }))
    }

    async fn controller_unpublish_volume(
        &self,
        _: Request<ControllerUnpublishVolumeRequest>,
    ) -> Rpc<ControllerUnpublishVolumeResponse> {
        Ok(Response::new(ControllerUnpublishVolumeResponse {}))
    }

    async fn validate_volume_capabilities(
        &self,
        _: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Rpc<ValidateVolumeCapabilitiesResponse> {
        Err(Status::unimplemented("validate"))
    }

    /// Three pages: tokens "" -> "1" -> "2" -> end.
    async fn list_volumes(&self, request: Request<ListVolumesRequest>) -> Rpc<ListVolumesResponse> {
        let token = request.into_inner().starting_token;
        self.seen.lock().unwrap().list_tokens.push(token.clone());
        let (id, next) = match token.as_str() {
            "" => ("a", "1"),
            "1" => ("b", "2"),
            "2" => ("c", ""),
            _ => return Err(Status::aborted("bad token")),
        };
        Ok(Response::new(ListVolumesResponse {
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
        }))
    }

    async fn get_capacity(&self, _: Request<GetCapacityRequest>) -> Rpc<GetCapacityResponse> {
        Err(Status::unimplemented("get_capacity"))
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<ControllerGetCapabilitiesRequest>,
    ) -> Rpc<ControllerGetCapabilitiesResponse> {
        Err(Status::unimplemented("capabilities"))
    }

    async fn create_snapshot(
        &self,
        _: Request<CreateSnapshotRequest>,
    ) -> Rpc<CreateSnapshotResponse> {
        Err(Status::unimplemented("create_snapshot"))
    }

    async fn delete_snapshot(
        &self,
        _: Request<DeleteSnapshotRequest>,
    ) -> Rpc<DeleteSnapshotResponse> {
        Err(Status::unimplemented("delete_snapshot"))
    }

    async fn list_snapshots(&self, _: Request<ListSnapshotsRequest>) -> Rpc<ListSnapshotsResponse> {
        Err(Status::unimplemented("list_snapshots"))
    }

    async fn get_snapshot(&self, _: Request<GetSnapshotRequest>) -> Rpc<GetSnapshotResponse> {
        Err(Status::unimplemented("get_snapshot"))
    }

    async fn controller_expand_volume(
        &self,
        _: Request<ControllerExpandVolumeRequest>,
    ) -> Rpc<ControllerExpandVolumeResponse> {
        Err(Status::unimplemented("expand"))
    }

    async fn controller_get_volume(
        &self,
        _: Request<ControllerGetVolumeRequest>,
    ) -> Rpc<ControllerGetVolumeResponse> {
        Err(Status::unimplemented("get_volume"))
    }

    async fn controller_modify_volume(
        &self,
        _: Request<ControllerModifyVolumeRequest>,
    ) -> Rpc<ControllerModifyVolumeResponse> {
        Err(Status::unimplemented("modify"))
    }
}

#[tonic::async_trait]
impl Node for Fake {
    async fn node_stage_volume(
        &self,
        request: Request<NodeStageVolumeRequest>,
    ) -> Rpc<NodeStageVolumeResponse> {
        let request = request.into_inner();
        self.seen.lock().unwrap().secrets = request.secrets;
        Ok(Response::new(NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        _: Request<NodeUnstageVolumeRequest>,
    ) -> Rpc<NodeUnstageVolumeResponse> {
        Ok(Response::new(NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Rpc<NodePublishVolumeResponse> {
        if request.get_ref().target_path == "/slow" {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        _: Request<NodeUnpublishVolumeRequest>,
    ) -> Rpc<NodeUnpublishVolumeResponse> {
        Ok(Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        _: Request<NodeGetVolumeStatsRequest>,
    ) -> Rpc<NodeGetVolumeStatsResponse> {
        Ok(Response::new(NodeGetVolumeStatsResponse {
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
        }))
    }

    async fn node_expand_volume(
        &self,
        _: Request<NodeExpandVolumeRequest>,
    ) -> Rpc<NodeExpandVolumeResponse> {
        Ok(Response::new(NodeExpandVolumeResponse {
            capacity_bytes: 2 << 30,
        }))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<NodeGetCapabilitiesRequest>,
    ) -> Rpc<NodeGetCapabilitiesResponse> {
        use node_service_capability::{Rpc as RpcCap, Type, rpc};
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: vec![NodeServiceCapability {
                r#type: Some(Type::Rpc(RpcCap {
                    r#type: rpc::Type::StageUnstageVolume as i32,
                })),
            }],
        }))
    }

    async fn node_get_info(&self, _: Request<NodeGetInfoRequest>) -> Rpc<NodeGetInfoResponse> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: "node-1".into(),
            max_volumes_per_node: 64,
            accessible_topology: Some(Topology {
                segments: HashMap::from([("zone".into(), "a".into())]),
            }),
        }))
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
