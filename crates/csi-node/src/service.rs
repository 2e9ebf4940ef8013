//! The CSI Node gRPC service: thin. Records ids on the span, takes the volume's guard, runs the
//! operation in a spawned task that owns the guard (tonic drops a handler's future when the
//! client times out; the operation must still finish), and maps domain errors to statuses.
//!
//! The only module that reads CSI requests and builds CSI responses: each request becomes its
//! operation's borrowed domain request (the `From` impls below), each domain result its
//! response; the operations parse and check the fields themselves, in the spec's error order.

use crate::ops::{
    self, NodeCore,
    expand::{Expand, Expanded},
    info::NodeInfo,
    publish::Publish,
    stage::Stage,
    stats::{Stats, Unit, Usage, VolumeStats},
    unpublish::Unpublish,
    unstage::Unstage,
};
use csi_common::{Error, Result, guard::OperationGuards, telemetry::record_ids};
use csi_proto::v1::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest,
    NodeGetCapabilitiesResponse, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeServiceCapability, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse,
    NodeUnstageVolumeRequest, NodeUnstageVolumeResponse, Topology, VolumeCondition, VolumeUsage,
    node_server::Node,
    node_service_capability::{Rpc, Type, rpc::Type as RpcType},
    volume_usage::Unit as CsiUnit,
};
use std::{future::Future, sync::Arc};
use tonic::{Request, Response, Status};

/// The capabilities this node advertises; every one is implemented (EXPAND_VOLUME: `expand`,
/// proven in the guest).
pub const CAPABILITIES: [RpcType; 5] = [
    RpcType::StageUnstageVolume,
    RpcType::GetVolumeStats,
    RpcType::VolumeCondition,
    RpcType::SingleNodeMultiWriter,
    RpcType::ExpandVolume,
];

impl<'a> From<&'a NodeStageVolumeRequest> for Stage<'a> {
    fn from(req: &'a NodeStageVolumeRequest) -> Self {
        Stage {
            volume_id: &req.volume_id,
            staging_path: &req.staging_target_path,
            capability: req.volume_capability.as_ref(),
            publish_context: &req.publish_context,
            volume_context: &req.volume_context,
            secrets: &req.secrets,
        }
    }
}

impl<'a> From<&'a NodeUnstageVolumeRequest> for Unstage<'a> {
    fn from(req: &'a NodeUnstageVolumeRequest) -> Self {
        Unstage {
            volume_id: &req.volume_id,
            staging_path: &req.staging_target_path,
        }
    }
}

impl<'a> From<&'a NodePublishVolumeRequest> for Publish<'a> {
    fn from(req: &'a NodePublishVolumeRequest) -> Self {
        Publish {
            volume_id: &req.volume_id,
            staging_path: &req.staging_target_path,
            target_path: &req.target_path,
            capability: req.volume_capability.as_ref(),
            readonly: req.readonly,
        }
    }
}

impl<'a> From<&'a NodeUnpublishVolumeRequest> for Unpublish<'a> {
    fn from(req: &'a NodeUnpublishVolumeRequest) -> Self {
        Unpublish {
            volume_id: &req.volume_id,
            target_path: &req.target_path,
        }
    }
}

impl<'a> From<&'a NodeGetVolumeStatsRequest> for Stats<'a> {
    fn from(req: &'a NodeGetVolumeStatsRequest) -> Self {
        Stats {
            volume_id: &req.volume_id,
            volume_path: &req.volume_path,
        }
    }
}

impl<'a> From<&'a NodeExpandVolumeRequest> for Expand<'a> {
    fn from(req: &'a NodeExpandVolumeRequest) -> Self {
        let range = req.capacity_range.unwrap_or_default();
        Expand {
            volume_id: &req.volume_id,
            volume_path: &req.volume_path,
            staging_path: &req.staging_target_path,
            required_bytes: range.required_bytes,
            limit_bytes: range.limit_bytes,
            capability: req.volume_capability.as_ref(),
        }
    }
}

impl From<VolumeStats> for NodeGetVolumeStatsResponse {
    fn from(stats: VolumeStats) -> Self {
        let usage = |u: Usage| VolumeUsage {
            available: u.available,
            total: u.total,
            used: u.used,
            unit: match u.unit {
                Unit::Bytes => CsiUnit::Bytes,
                Unit::Inodes => CsiUnit::Inodes,
            } as i32,
        };
        NodeGetVolumeStatsResponse {
            usage: stats.usage.into_iter().map(usage).collect(),
            volume_condition: Some(VolumeCondition {
                abnormal: stats.abnormal,
                message: stats.message,
            }),
        }
    }
}

impl From<Expanded> for NodeExpandVolumeResponse {
    fn from(expanded: Expanded) -> Self {
        NodeExpandVolumeResponse {
            capacity_bytes: expanded.capacity_bytes,
        }
    }
}

impl From<NodeInfo> for NodeGetInfoResponse {
    fn from(info: NodeInfo) -> Self {
        NodeGetInfoResponse {
            node_id: info.node_id,
            max_volumes_per_node: info.max_volumes,
            accessible_topology: info.topology.map(|segments| Topology { segments }),
        }
    }
}

/// The Node service.
#[derive(Debug, Clone)]
pub struct NodeService {
    core: Arc<NodeCore>,
    guards: OperationGuards,
}

impl NodeService {
    /// A service over `core`.
    pub fn new(core: Arc<NodeCore>) -> Self {
        Self::with_guards(core, OperationGuards::new("volume"))
    }

    /// A service over `core` taking `guards`, shared with the upkeep sweep.
    pub fn with_guards(core: Arc<NodeCore>, guards: OperationGuards) -> Self {
        Self { core, guards }
    }

    /// Runs `op` in its own task holding the guard of `volume_id`.
    async fn guarded<T, F, Fut>(&self, volume_id: &str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<NodeCore>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        if volume_id.is_empty() {
            return Err(Error::invalid_argument("volume_id is required"));
        }
        let guard = self.guards.try_acquire(volume_id)?;
        let core = Arc::clone(&self.core);
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let _guard = guard;
                op(core).await
            },
            span,
        ));
        task.await
            .map_err(|e| Error::internal(format!("operation task failed: {e}")))?
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        let id = req.volume_id.clone();
        self.guarded(&id, |core| async move {
            ops::stage::stage(&core, (&req).into()).await
        })
        .await?;
        Ok(Response::new(NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        let id = req.volume_id.clone();
        self.guarded(&id, |core| async move {
            ops::unstage::unstage(&core, (&req).into()).await
        })
        .await?;
        Ok(Response::new(NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        let id = req.volume_id.clone();
        self.guarded(&id, |core| async move {
            ops::publish::publish(&core, (&req).into()).await
        })
        .await?;
        Ok(Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        let id = req.volume_id.clone();
        self.guarded(&id, |core| async move {
            ops::unpublish::unpublish(&core, (&req).into()).await
        })
        .await?;
        Ok(Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        if req.volume_id.is_empty() {
            return Err(Error::invalid_argument("volume_id is required").into());
        }
        let stats = ops::stats::stats(&self.core, (&req).into())?;
        Ok(Response::new(stats.into()))
    }

    async fn node_expand_volume(
        &self,
        request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        let id = req.volume_id.clone();
        let response = self
            .guarded(&id, |core| async move {
                ops::expand::expand(&core, (&req).into()).await
            })
            .await?;
        Ok(Response::new(response.into()))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: CAPABILITIES
                .iter()
                .map(|t| NodeServiceCapability {
                    r#type: Some(Type::Rpc(Rpc { r#type: *t as i32 })),
                })
                .collect(),
        }))
    }

    async fn node_get_info(
        &self,
        _request: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        record_ids(None, Some(self.core.node_id.as_str()));
        Ok(Response::new(ops::info::info(&self.core).into()))
    }
}
