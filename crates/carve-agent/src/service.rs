//! The Agent gRPC service: thin translation between carve.agent.v1 messages and csi-controller's
//! operations ([`csi_controller::ops`]), the same functions the single-host controller's CSI
//! service calls.
//!
//! Invariants, as in the controller's service: mutating RPCs take the per-volume guard
//! (CreateVolume: per name, keyed by the LV it derives to, and GetVolume of that LV is
//! `Aborted` while it runs; snapshots: per snapshot id) and run in a spawned task that owns it,
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
        snapshot::create::{SnapshotCreated, id_for},
    },
    restoration::Restoration,
};
use proto::agent_server::Agent;
use std::{future::Future, sync::Arc};

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
        let volumes = OperationGuards::new("volume");
        Self::over(ctx, readiness, volumes, Restoration::default())
    }

    /// The service over `host`, sharing its per-volume guards and restoration record with
    /// startup reconciliation and its readiness with State.
    pub fn for_host(host: &StorageHost) -> Self {
        let (ctx, readiness) = (host.ctx.clone(), host.readiness.clone());
        Self::over(
            ctx,
            readiness,
            host.volume_guards.clone(),
            host.restoration.clone(),
        )
    }

    /// The service over `ctx` with these per-volume guards and restoration record, and
    /// per-name and per-snapshot guards of its own.
    fn over(
        ctx: Ctx,
        readiness: Arc<dyn Readiness>,
        volumes: OperationGuards,
        restoration: Restoration,
    ) -> Self {
        Self {
            ctx,
            volumes,
            names: OperationGuards::new("name"),
            snapshots: OperationGuards::new("snapshot"),
            restoration,
            readiness,
        }
    }

    /// Records `volume_id` (and `node_id`) on the span; `Unavailable` until the volume is
    /// restored.
    fn restored(&self, volume_id: &str, node_id: Option<&str>) -> Result<()> {
        record_ids(Some(volume_id), node_id);
        self.restoration.check(volume_id)
    }

    /// [`Self::restored`], then `op` over the context in its own task holding the volume's
    /// guard ([`OperationGuards::run`]).
    async fn on_volume<T, Fut>(
        &self,
        volume_id: &str,
        node_id: Option<&str>,
        op: impl FnOnce(Ctx) -> Fut,
    ) -> Result<T>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.restored(volume_id, node_id)?;
        self.volumes.run(volume_id, op(self.ctx.clone())).await
    }
}

/// The capabilities of a request, in the operations' CSI form.
fn capabilities(caps: &[proto::Capability]) -> Vec<csi_proto::v1::VolumeCapability> {
    caps.iter().map(convert::capability).collect()
}

impl AgentService {
    async fn host_state(&self, _: proto::StateRequest) -> Result<proto::StateResponse> {
        let verdict = self.readiness.check().await;
        let vg = match self.ctx.lvm() {
            Ok(lvm) => lvm.vg().await.ok(),
            Err(_) => None,
        };
        let settings = &self.ctx.settings;
        Ok(proto::StateResponse {
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
        })
    }

    async fn create(&self, req: proto::CreateVolumeRequest) -> Result<proto::CreateVolumeResponse> {
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
        let ctx = self.ctx.clone();
        // Keyed by the LV the name derives to, so GetVolume can tell a create in flight.
        let lv = csi_common::ids::LvName::for_volume(&req.name).to_string();
        let created = self
            .names
            .run(&lv, async move {
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
        Ok(proto::CreateVolumeResponse {
            volume: Some(convert::volume(&self.ctx, created.volume())),
            created: matches!(created, Created::Created(_)),
        })
    }

    async fn delete(&self, req: proto::DeleteVolumeRequest) -> Result<proto::DeleteVolumeResponse> {
        let deleted = self
            .on_volume(&req.volume_id.clone(), None, move |ctx| async move {
                ops::delete_volume::delete_volume(&ctx, &req.volume_id).await
            })
            .await?;
        Ok(proto::DeleteVolumeResponse {
            deleted: deleted == Deleted::Deleted,
        })
    }

    async fn expand(&self, req: proto::ExpandVolumeRequest) -> Result<proto::ExpandVolumeResponse> {
        let expanded = self
            .on_volume(&req.volume_id.clone(), None, move |ctx| async move {
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
        Ok(proto::ExpandVolumeResponse {
            capacity_bytes: expanded.capacity,
            node_expansion_required: expanded.node_expansion_required,
        })
    }

    async fn get(&self, req: proto::GetVolumeRequest) -> Result<proto::GetVolumeResponse> {
        self.restored(&req.volume_id, None)?;
        // A volume still being created is not "not found": a controller asking which host holds
        // a name (after its earlier call was cut off) would place it a second time elsewhere.
        self.names.check(&req.volume_id)?;
        let status = ops::list_volumes::get_volume(&self.ctx, &req.volume_id).await?;
        Ok(proto::GetVolumeResponse {
            status: Some(convert::volume_status(&self.ctx, &status)),
        })
    }

    async fn list(&self, req: proto::ListVolumesRequest) -> Result<proto::ListVolumesResponse> {
        // Published nodes come from the ACLs, which are not all back yet.
        self.restoration.check_all()?;
        let page = ops::list_volumes::list_volumes(&self.ctx, req.max_entries, &req.starting_token)
            .await?;
        Ok(proto::ListVolumesResponse {
            entries: page
                .entries
                .iter()
                .map(|s| convert::volume_status(&self.ctx, s))
                .collect(),
            next_token: page.next_token,
        })
    }

    async fn capacity(&self, req: proto::GetCapacityRequest) -> Result<proto::GetCapacityResponse> {
        let caps = capabilities(&req.capabilities);
        let cap = ops::get_capacity::get_capacity(&self.ctx, &caps, &req.parameters, None).await?;
        Ok(proto::GetCapacityResponse {
            available_bytes: cap.available,
            minimum_volume_bytes: cap.minimum_volume_size,
        })
    }

    async fn publish_volume(&self, req: proto::PublishRequest) -> Result<proto::PublishResponse> {
        let (id, node) = (req.volume_id.clone(), req.node_id.clone());
        let published = self
            .on_volume(&id, Some(&node), move |ctx| async move {
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
        Ok(proto::PublishResponse {
            publish_context: published.to_context(),
        })
    }

    async fn unpublish_volume(
        &self,
        req: proto::UnpublishRequest,
    ) -> Result<proto::UnpublishResponse> {
        let (id, node) = (req.volume_id.clone(), req.node_id.clone());
        let revoked = self
            .on_volume(&id, Some(&node), move |ctx| async move {
                ops::unpublish::unpublish(&ctx, &req.volume_id, &req.node_id).await
            })
            .await?;
        Ok(proto::UnpublishResponse { revoked })
    }

    async fn take_snapshot(
        &self,
        req: proto::CreateSnapshotRequest,
    ) -> Result<proto::CreateSnapshotResponse> {
        self.restored(&req.source_volume_id, None)?;
        let ctx = self.ctx.clone();
        let created = self
            .snapshots
            .run(id_for(&req.name).as_str(), async move {
                ops::snapshot::create::create_snapshot(&ctx, convert::create_snapshot(&req)).await
            })
            .await?;
        Ok(proto::CreateSnapshotResponse {
            snapshot: Some(convert::snapshot(created.snapshot())),
            created: matches!(created, SnapshotCreated::Created(_)),
        })
    }

    async fn remove_snapshot(
        &self,
        req: proto::DeleteSnapshotRequest,
    ) -> Result<proto::DeleteSnapshotResponse> {
        let ctx = self.ctx.clone();
        let deleted = self
            .snapshots
            .run(&req.snapshot_id.clone(), async move {
                ops::snapshot::delete::delete_snapshot(&ctx, &req.snapshot_id).await
            })
            .await?;
        Ok(proto::DeleteSnapshotResponse {
            deleted: deleted == Deleted::Deleted,
        })
    }

    async fn snapshots(
        &self,
        req: proto::ListSnapshotsRequest,
    ) -> Result<proto::ListSnapshotsResponse> {
        let op = convert::list_snapshots(&req);
        let page = ops::snapshot::list::list_snapshots(&self.ctx, op).await?;
        Ok(proto::ListSnapshotsResponse {
            entries: page.entries.iter().map(convert::snapshot).collect(),
            next_token: page.next_token,
        })
    }
}

csi_common::grpc_service! {
    impl Agent for AgentService {
        state(proto::StateRequest) -> proto::StateResponse = host_state.await;
        // Volumes.
        create_volume(proto::CreateVolumeRequest) -> proto::CreateVolumeResponse = create.await;
        delete_volume(proto::DeleteVolumeRequest) -> proto::DeleteVolumeResponse = delete.await;
        expand_volume(proto::ExpandVolumeRequest) -> proto::ExpandVolumeResponse = expand.await;
        get_volume(proto::GetVolumeRequest) -> proto::GetVolumeResponse = get.await;
        list_volumes(proto::ListVolumesRequest) -> proto::ListVolumesResponse = list.await;
        get_capacity(proto::GetCapacityRequest) -> proto::GetCapacityResponse = capacity.await;
        // A node's access.
        publish(proto::PublishRequest) -> proto::PublishResponse = publish_volume.await;
        unpublish(proto::UnpublishRequest) -> proto::UnpublishResponse = unpublish_volume.await;
        // Snapshots.
        create_snapshot(proto::CreateSnapshotRequest) -> proto::CreateSnapshotResponse = take_snapshot.await;
        delete_snapshot(proto::DeleteSnapshotRequest) -> proto::DeleteSnapshotResponse = remove_snapshot.await;
        list_snapshots(proto::ListSnapshotsRequest) -> proto::ListSnapshotsResponse = snapshots.await;
    }
}
