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

/// `From<&'a Request>` for the operations whose request is the volume id and one path:
/// `Request => Operation { operation's field: request's field }`.
macro_rules! id_and_path {
    ($($csi:ty => $op:ident { $path:ident: $field:ident })*) => {
        $(
            impl<'a> From<&'a $csi> for $op<'a> {
                fn from(req: &'a $csi) -> Self {
                    $op {
                        volume_id: &req.volume_id,
                        $path: &req.$field,
                    }
                }
            }
        )*
    };
}

id_and_path! {
    NodeUnstageVolumeRequest => Unstage { staging_path: staging_target_path }
    NodeUnpublishVolumeRequest => Unpublish { target_path: target_path }
}

impl<'a> From<&'a NodeGetVolumeStatsRequest> for Stats<'a> {
    fn from(req: &'a NodeGetVolumeStatsRequest) -> Self {
        Stats {
            volume_id: &req.volume_id,
            volume_path: &req.volume_path,
            staging_path: &req.staging_target_path,
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

    /// Records `volume_id` on the span and runs `op` in its own task holding its guard.
    async fn guarded<T, F, Fut>(&self, volume_id: String, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<NodeCore>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        record_ids(Some(&volume_id), None);
        if volume_id.is_empty() {
            return Err(Error::invalid_argument("volume_id is required"));
        }
        // Keyed by the local id, as upkeep's sweep keys a session by its target.
        let guard = self
            .guards
            .try_acquire(csi_common::placed::guard_key(&volume_id))?;
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

    async fn expand(&self, req: NodeExpandVolumeRequest) -> Result<NodeExpandVolumeResponse> {
        let expanded = self
            .guarded(req.volume_id.clone(), |core| async move {
                ops::expand::expand(&core, (&req).into()).await
            })
            .await?;
        Ok(expanded.into())
    }

    #[allow(clippy::needless_pass_by_value)] // the shape of every handler
    fn stats(&self, req: NodeGetVolumeStatsRequest) -> Result<NodeGetVolumeStatsResponse> {
        record_ids(Some(&req.volume_id), None);
        if req.volume_id.is_empty() {
            return Err(Error::invalid_argument("volume_id is required"));
        }
        Ok(ops::stats::stats(&self.core, (&req).into())?.into())
    }

    #[allow(clippy::unnecessary_wraps, clippy::unused_self)] // the shape of every handler
    fn capabilities(&self, _: NodeGetCapabilitiesRequest) -> Result<NodeGetCapabilitiesResponse> {
        Ok(NodeGetCapabilitiesResponse {
            capabilities: CAPABILITIES
                .iter()
                .map(|t| NodeServiceCapability {
                    r#type: Some(Type::Rpc(Rpc { r#type: *t as i32 })),
                })
                .collect(),
        })
    }

    #[allow(clippy::unnecessary_wraps)] // the shape of every handler
    fn info(&self, _: NodeGetInfoRequest) -> Result<NodeGetInfoResponse> {
        record_ids(None, Some(self.core.node_id.as_str()));
        Ok(ops::info::info(&self.core).into())
    }
}

/// The handlers of the RPCs that only run their volume's operation in
/// [`NodeService::guarded`], handing it the request's domain form (the `From` impls above), and
/// answer an empty response.
macro_rules! guarded_handlers {
    ($($handler:ident($req:ty) -> $resp:ident = $op:path;)*) => {
        impl NodeService {
            $(
                async fn $handler(&self, req: $req) -> Result<$resp> {
                    self.guarded(req.volume_id.clone(), |core| async move {
                        $op(&core, (&req).into()).await
                    })
                    .await
                    .map(|()| $resp {})
                }
            )*
        }
    };
}

guarded_handlers! {
    stage(NodeStageVolumeRequest) -> NodeStageVolumeResponse = ops::stage::stage;
    unstage(NodeUnstageVolumeRequest) -> NodeUnstageVolumeResponse = ops::unstage::unstage;
    publish(NodePublishVolumeRequest) -> NodePublishVolumeResponse = ops::publish::publish;
    unpublish(NodeUnpublishVolumeRequest) -> NodeUnpublishVolumeResponse = ops::unpublish::unpublish;
}

csi_common::grpc_service! {
    impl Node for NodeService {
        node_get_capabilities(NodeGetCapabilitiesRequest) -> NodeGetCapabilitiesResponse = capabilities;
        node_stage_volume(NodeStageVolumeRequest) -> NodeStageVolumeResponse = stage.await;
        node_unstage_volume(NodeUnstageVolumeRequest) -> NodeUnstageVolumeResponse = unstage.await;
        node_publish_volume(NodePublishVolumeRequest) -> NodePublishVolumeResponse = publish.await;
        node_unpublish_volume(NodeUnpublishVolumeRequest) -> NodeUnpublishVolumeResponse = unpublish.await;
        node_get_volume_stats(NodeGetVolumeStatsRequest) -> NodeGetVolumeStatsResponse = stats;
        node_expand_volume(NodeExpandVolumeRequest) -> NodeExpandVolumeResponse = expand.await;
        node_get_info(NodeGetInfoRequest) -> NodeGetInfoResponse = info;
    }
}
