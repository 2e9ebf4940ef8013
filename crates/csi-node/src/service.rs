//! The CSI Node gRPC service: thin. Records ids on the span, takes the volume's guard, runs the
//! operation in a spawned task that owns the guard (tonic drops a handler's future when the
//! client times out; the operation must still finish), and maps domain errors to statuses.

use crate::ops::{self, NodeCore};
use csi_common::{Error, Result, guard::OperationGuards, telemetry::record_ids};
use csi_proto::v1::{node_server::Node, *};
use std::{future::Future, sync::Arc};
use tonic::{Request, Response, Status};

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
        self.guarded(
            &id,
            |core| async move { ops::stage::stage(&core, req).await },
        )
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
            ops::unstage::unstage(&core, req).await
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
            ops::publish::publish(&core, req).await
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
            ops::unpublish::unpublish(&core, req).await
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
        Ok(Response::new(ops::stats::stats(&self.core, req).await?))
    }

    async fn node_expand_volume(
        &self,
        request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        let id = req.volume_id.clone();
        let response = self
            .guarded(
                &id,
                |core| async move { ops::expand::expand(&core, req).await },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        Ok(Response::new(ops::info::capabilities()))
    }

    async fn node_get_info(
        &self,
        _request: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        record_ids(None, Some(self.core.node_id.as_str()));
        Ok(Response::new(ops::info::info(&self.core)))
    }
}
