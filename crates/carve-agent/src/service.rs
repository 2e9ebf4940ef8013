//! The Agent gRPC service: thin translation between carve.agent.v1 messages and csi-controller's
//! operations ([`csi_controller::ops`]), the same functions the single-host controller's CSI
//! service calls.
//!
//! Invariants, as in the controller's service: mutating RPCs take the per-volume guard
//! (CreateVolume: per name; snapshots: per snapshot id) and run in a spawned task that owns it,
//! so a client that gives up (tonic drops the handler future) never cancels an LVM or LIO change
//! halfway, and a second call in flight is `Aborted`; while startup reconciliation runs, an RPC
//! naming a volume it has not restored yet, and ListVolumes until it completes, answer
//! `Unavailable`; domain errors become gRPC codes only through `csi_common::Error`'s table;
//! CHAP secrets go from the request to LIO and nowhere else.

use crate::proto;
use csi_common::{Result, guard::OperationGuards, identity::Readiness, telemetry::record_ids};
use csi_controller::{
    agent::convert,
    host::StorageHost,
    ops::{
        self, Ctx,
        create_volume::{CreateVolume, Created},
        delete_volume::Deleted,
        publish::Publish,
        snapshot::{
            create::{CreateSnapshot, SnapshotCreated, id_for},
            list::ListSnapshots,
        },
    },
    restoration::Restoration,
};
use proto::agent_server::Agent;
use std::{future::Future, sync::Arc};
use tonic::{Request, Response, Status};

/// The Agent service over one storage host.
#[derive(Debug, Clone)]
pub struct AgentService {
    ctx: Ctx,
    volumes: OperationGuards,
    names: OperationGuards,
    snapshots: OperationGuards,
    restoration: Restoration,
    readiness: Arc<dyn Readiness>,
}

impl AgentService {
    /// The service over `ctx`, ready when `readiness` says so, with guards of its own and
    /// nothing waiting for restoration (for tests; the binary uses [`AgentService::for_host`]).
    pub fn new(ctx: Ctx, readiness: Arc<dyn Readiness>) -> Self {
        Self {
            ctx,
            volumes: OperationGuards::new("volume"),
            names: OperationGuards::new("name"),
            snapshots: OperationGuards::new("snapshot"),
            restoration: Restoration::default(),
            readiness,
        }
    }

    /// The service over `host`, sharing its per-volume guards and restoration record with
    /// startup reconciliation and its readiness with State.
    pub fn for_host(host: &StorageHost) -> Self {
        Self {
            volumes: host.volume_guards.clone(),
            restoration: host.restoration.clone(),
            ..Self::new(host.ctx.clone(), host.readiness.clone())
        }
    }

    /// Runs `op` in its own task holding the guard of `key`.
    async fn guarded<T, F, Fut>(&self, guards: &OperationGuards, key: &str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        guards.run(key, op(self.ctx.clone())).await
    }
}

/// The capabilities of a request, in the operations' CSI form.
fn capabilities(caps: &[proto::Capability]) -> Vec<csi_proto::v1::VolumeCapability> {
    caps.iter().map(convert::capability).collect()
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn state(
        &self,
        _request: Request<proto::StateRequest>,
    ) -> Result<Response<proto::StateResponse>, Status> {
        let verdict = self.readiness.check().await;
        let vg = match self.ctx.lvm() {
            Ok(lvm) => lvm.vg().await.ok(),
            Err(_) => None,
        };
        let settings = &self.ctx.settings;
        Ok(Response::new(proto::StateResponse {
            ready: verdict.is_ok(),
            not_ready: verdict.err().unwrap_or_default(),
            volume_group: self
                .ctx
                .lvm()
                .map(|l| l.vg_name().to_string())
                .unwrap_or_default(),
            thin_pool: settings.thin_pool.clone().unwrap_or_default(),
            vg_size_bytes: vg.as_ref().map_or(0, |v| v.size),
            vg_free_bytes: vg.as_ref().map_or(0, |v| v.free),
            extent_size_bytes: vg.as_ref().map_or(0, |v| v.extent_size),
            portals: settings.portals.iter().map(ToString::to_string).collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn create_volume(
        &self,
        request: Request<proto::CreateVolumeRequest>,
    ) -> Result<Response<proto::CreateVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(None, None);
        if !req.name.is_empty() {
            let lv = csi_common::ids::LvName::for_volume(&req.name);
            self.restoration.check(lv.as_str())?;
        }
        if let Some(proto::content_source::Source::VolumeId(source)) =
            req.content_source.as_ref().and_then(|s| s.source.as_ref())
        {
            self.restoration.check(source)?;
        }
        let name = req.name.clone();
        let created = self
            .guarded(&self.names, &name, move |ctx| async move {
                let caps = capabilities(&req.capabilities);
                let range = req.capacity_range.as_ref().map(convert::capacity_range);
                let op = CreateVolume {
                    name: &req.name,
                    capacity: range.as_ref(),
                    capabilities: &caps,
                    parameters: &req.parameters,
                    requisite: &[],
                };
                match convert::content_source(req.content_source.as_ref()) {
                    Some(source) => {
                        ops::create_from_source::create_from_source(&ctx, op, &source).await
                    }
                    None => ops::create_volume::create_volume(&ctx, op).await,
                }
            })
            .await?;
        record_ids(Some(created.volume().id.as_str()), None);
        Ok(Response::new(proto::CreateVolumeResponse {
            volume: Some(convert::volume(&self.ctx, created.volume())),
            created: matches!(created, Created::Created(_)),
        }))
    }

    async fn delete_volume(
        &self,
        request: Request<proto::DeleteVolumeRequest>,
    ) -> Result<Response<proto::DeleteVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        self.restoration.check(&req.volume_id)?;
        let id = req.volume_id.clone();
        let deleted = self
            .guarded(&self.volumes, &id, move |ctx| async move {
                ops::delete_volume::delete_volume(&ctx, &req.volume_id).await
            })
            .await?;
        Ok(Response::new(proto::DeleteVolumeResponse {
            deleted: deleted == Deleted::Deleted,
        }))
    }

    async fn expand_volume(
        &self,
        request: Request<proto::ExpandVolumeRequest>,
    ) -> Result<Response<proto::ExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        self.restoration.check(&req.volume_id)?;
        let id = req.volume_id.clone();
        let expanded = self
            .guarded(&self.volumes, &id, move |ctx| async move {
                let range = req.capacity_range.as_ref().map(convert::capacity_range);
                let cap = req.capability.as_ref().map(convert::capability);
                ops::expand_volume::expand_volume(
                    &ctx,
                    &req.volume_id,
                    range.as_ref(),
                    cap.as_ref(),
                )
                .await
            })
            .await?;
        Ok(Response::new(proto::ExpandVolumeResponse {
            capacity_bytes: expanded.capacity,
            node_expansion_required: expanded.node_expansion_required,
        }))
    }

    async fn get_volume(
        &self,
        request: Request<proto::GetVolumeRequest>,
    ) -> Result<Response<proto::GetVolumeResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), None);
        self.restoration.check(&req.volume_id)?;
        let status = ops::list_volumes::get_volume(&self.ctx, &req.volume_id).await?;
        Ok(Response::new(proto::GetVolumeResponse {
            status: Some(convert::volume_status(&self.ctx, &status)),
        }))
    }

    async fn list_volumes(
        &self,
        request: Request<proto::ListVolumesRequest>,
    ) -> Result<Response<proto::ListVolumesResponse>, Status> {
        let req = request.into_inner();
        // Published nodes come from the ACLs, which are not all back yet.
        self.restoration.check_all()?;
        let page = ops::list_volumes::list_volumes(&self.ctx, req.max_entries, &req.starting_token)
            .await?;
        Ok(Response::new(proto::ListVolumesResponse {
            entries: page
                .entries
                .iter()
                .map(|s| convert::volume_status(&self.ctx, s))
                .collect(),
            next_token: page.next_token,
        }))
    }

    async fn get_capacity(
        &self,
        request: Request<proto::GetCapacityRequest>,
    ) -> Result<Response<proto::GetCapacityResponse>, Status> {
        let req = request.into_inner();
        let caps = capabilities(&req.capabilities);
        let cap = ops::get_capacity::get_capacity(&self.ctx, &caps, &req.parameters, None).await?;
        Ok(Response::new(proto::GetCapacityResponse {
            available_bytes: cap.available,
            minimum_volume_bytes: cap.minimum_volume_size,
        }))
    }

    async fn publish(
        &self,
        request: Request<proto::PublishRequest>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), Some(&req.node_id));
        self.restoration.check(&req.volume_id)?;
        let id = req.volume_id.clone();
        let published = self
            .guarded(&self.volumes, &id, move |ctx| async move {
                let cap = req.capability.as_ref().map(convert::capability);
                let secrets = req.chap.map(|c| c.secrets).unwrap_or_default();
                let op = Publish {
                    volume_id: &req.volume_id,
                    node_id: &req.node_id,
                    capability: cap.as_ref(),
                    readonly: req.readonly,
                    secrets: &secrets,
                };
                ops::publish::publish(&ctx, op).await
            })
            .await?;
        Ok(Response::new(proto::PublishResponse {
            publish_context: published.to_context(),
        }))
    }

    async fn unpublish(
        &self,
        request: Request<proto::UnpublishRequest>,
    ) -> Result<Response<proto::UnpublishResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.volume_id), Some(&req.node_id));
        self.restoration.check(&req.volume_id)?;
        let id = req.volume_id.clone();
        let revoked = self
            .guarded(&self.volumes, &id, move |ctx| async move {
                ops::unpublish::unpublish(&ctx, &req.volume_id, &req.node_id).await
            })
            .await?;
        Ok(Response::new(proto::UnpublishResponse { revoked }))
    }

    async fn create_snapshot(
        &self,
        request: Request<proto::CreateSnapshotRequest>,
    ) -> Result<Response<proto::CreateSnapshotResponse>, Status> {
        let req = request.into_inner();
        record_ids(Some(&req.source_volume_id), None);
        self.restoration.check(&req.source_volume_id)?;
        let key = id_for(&req.name).to_string();
        let created = self
            .guarded(&self.snapshots, &key, move |ctx| async move {
                let op = CreateSnapshot {
                    name: &req.name,
                    source_volume_id: &req.source_volume_id,
                    parameters: &req.parameters,
                };
                ops::snapshot::create::create_snapshot(&ctx, op).await
            })
            .await?;
        Ok(Response::new(proto::CreateSnapshotResponse {
            snapshot: Some(convert::snapshot(created.snapshot())),
            created: matches!(created, SnapshotCreated::Created(_)),
        }))
    }

    async fn delete_snapshot(
        &self,
        request: Request<proto::DeleteSnapshotRequest>,
    ) -> Result<Response<proto::DeleteSnapshotResponse>, Status> {
        let req = request.into_inner();
        let key = req.snapshot_id.clone();
        let deleted = self
            .guarded(&self.snapshots, &key, move |ctx| async move {
                ops::snapshot::delete::delete_snapshot(&ctx, &req.snapshot_id).await
            })
            .await?;
        Ok(Response::new(proto::DeleteSnapshotResponse {
            deleted: deleted == Deleted::Deleted,
        }))
    }

    async fn list_snapshots(
        &self,
        request: Request<proto::ListSnapshotsRequest>,
    ) -> Result<Response<proto::ListSnapshotsResponse>, Status> {
        let req = request.into_inner();
        let op = ListSnapshots {
            max_entries: req.max_entries,
            starting_token: &req.starting_token,
            source_volume_id: &req.source_volume_id,
            snapshot_id: &req.snapshot_id,
        };
        let page = ops::snapshot::list::list_snapshots(&self.ctx, op).await?;
        Ok(Response::new(proto::ListSnapshotsResponse {
            entries: page.entries.iter().map(convert::snapshot).collect(),
            next_token: page.next_token,
        }))
    }
}
