//! The gRPC Controller service: thin translation between CSI messages and `ops` on the local
//! host, or the agents' calls ([`crate::fleet`]): every RPC naming a volume or snapshot resolves
//! its id to one backend ([`Backends::resolve`]) and runs there; CreateVolume, ListVolumes,
//! ListSnapshots and GetCapacity over agents go through `fleet`'s placement and listings.
//!
//! Invariants: every handler records its ids on the RPC span first; mutating RPCs take the
//! per-volume (CreateVolume: per-name) guard, keyed by the resolved volume
//! ([`Resolved::guard_key`]: the id itself on the local host, `AGENT:VG:LOCAL` on an agent, so
//! both spellings of a default agent's id take one guard) and run in a spawned task that owns it, so a
//! client timeout (tonic drops the handler future) never cancels an operation halfway; domain
//! errors become gRPC codes only through `csi_common::Error`'s table; while startup
//! reconciliation runs, an RPC naming a volume it has not restored yet (CreateVolume: the
//! volume of its name, or its source volume), and ListVolumes until it completes, answer
//! `Unavailable` from [`Restoration`] before taking any guard.

use crate::fleet::{Backend, Backends, Resolved, remote};
use crate::ops::{
    self, Ctx,
    create_volume::{CreateVolume, Created},
    list_volumes::VolumeStatus,
    publish::Publish,
};
use crate::restoration::Restoration;
use csi_common::{Result, guard::OperationGuards, telemetry::record_ids};
// The service speaks every message of CSI's Controller service.
#[allow(clippy::wildcard_imports)]
use csi_proto::v1::{
    controller_server::Controller, controller_service_capability::rpc::Type as Rpc, *,
};
use std::{collections::HashMap, future::Future};
use tonic::Status;

/// The capabilities this controller implements, exactly.
pub const CAPABILITIES: &[Rpc] = &[
    Rpc::CreateDeleteVolume,
    Rpc::PublishUnpublishVolume,
    Rpc::ListVolumes,
    Rpc::ListVolumesPublishedNodes,
    Rpc::GetCapacity,
    Rpc::GetVolume,
    Rpc::VolumeCondition,
    Rpc::PublishReadonly,
    Rpc::SingleNodeMultiWriter,
    Rpc::ExpandVolume,
    Rpc::CreateDeleteSnapshot,
    Rpc::ListSnapshots,
    Rpc::GetSnapshot,
    Rpc::CloneVolume,
];

/// The Controller service.
#[derive(Debug, Clone)]
pub struct ControllerService {
    backends: Backends,
    volumes: OperationGuards,
    names: OperationGuards,
    snapshots: OperationGuards,
    restoration: Restoration,
}

impl ControllerService {
    /// The service over the local storage host `ctx` (a single-host controller).
    pub fn new(ctx: Ctx) -> Self {
        Self::over(Backends::Local(Box::new(ctx)))
    }

    /// The service over `backends` (the local host, or the agents of the agents file).
    pub fn over(backends: Backends) -> Self {
        Self {
            backends,
            volumes: OperationGuards::new("volume"),
            names: OperationGuards::new("name"),
            snapshots: OperationGuards::new("snapshot"),
            restoration: Restoration::default(),
        }
    }

    /// The same service, refusing RPCs on volumes `restoration` has not restored yet.
    #[must_use]
    pub fn with_restoration(mut self, restoration: Restoration) -> Self {
        self.restoration = restoration;
        self
    }

    /// `Unavailable` while startup reconciliation has not restored the volume `id`.
    fn restored(&self, id: &str) -> Result<()> {
        self.restoration.check(id)
    }

    /// The service over `ctx`, sharing the per-volume `guards` with reconciliation.
    pub fn with_volume_guards(ctx: Ctx, guards: OperationGuards) -> Self {
        Self {
            volumes: guards,
            ..Self::new(ctx)
        }
    }

    /// The backend of volume `raw`, once its id is on the RPC span (with `node`, if any) and
    /// start-up reconciliation has restored it (else `Unavailable`); `field` and `what` name it
    /// in errors.
    fn volume_target(
        &self,
        raw: &str,
        node: Option<&str>,
        field: &str,
        what: &str,
    ) -> Result<Resolved> {
        record_ids(Some(raw), node);
        self.restored(raw)?;
        self.resolve(raw, field, what)
    }

    /// The backend of the volume or snapshot `raw` (request field `field`); `NotFound` when no
    /// configured backend can hold it.
    fn resolve(&self, raw: &str, field: &str, what: &str) -> Result<Resolved> {
        self.backends
            .resolve(raw, field)?
            .ok_or_else(|| Backends::unresolved(raw, what))
    }

    /// Runs `op` over the local host in its own task holding the guard of `key`.
    async fn guarded<T, F, Fut>(&self, guards: &OperationGuards, key: &str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let Backends::Local(ctx) = &self.backends else {
            return Err(csi_common::Error::internal("no local storage host"));
        };
        guards.run(key, op(Ctx::clone(ctx))).await
    }

    /// Records `volume_id` (and `node_id`) on the span, answers `Unavailable` until the volume
    /// is restored, resolves its backend (`NotFound`: none), then runs `op` holding the
    /// volume's guard.
    async fn on_volume<T, F, Fut>(
        &self,
        volume_id: String,
        node_id: Option<&str>,
        op: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Resolved) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let target = self.volume_target(&volume_id, node_id, "volume_id", "volume")?;
        self.volumes.run(&target.guard_key(), op(target)).await
    }
}

/// The CSI `Volume` of `v`: every answer that carries a volume (CreateVolume fresh or repeated,
/// ListVolumes, ControllerGetVolume) is built here, so `content_source` is never missing from
/// one of them.
fn csi_volume(ctx: &Ctx, v: &ops::volume::Volume) -> Volume {
    Volume {
        capacity_bytes: i64::try_from(v.lv.size).unwrap_or(i64::MAX),
        volume_id: v.id.to_string(),
        volume_context: v.volume_context(ctx),
        content_source: v.content_source(),
        accessible_topology: ctx
            .settings
            .accessible_topology
            .iter()
            .map(|s| Topology {
                segments: s.to_map(),
            })
            .collect(),
    }
}

fn csi_status(s: &VolumeStatus) -> (Vec<String>, VolumeCondition) {
    (
        s.published_nodes.clone(),
        volume_condition(s.abnormal.as_deref()),
    )
}

/// CSI's VolumeCondition (spec.md, "VolumeCondition") of a volume that is abnormal for the
/// reason `abnormal`, or healthy (`None`), as the local host or its agent reports it.
pub fn volume_condition(abnormal: Option<&str>) -> VolumeCondition {
    VolumeCondition {
        abnormal: abnormal.is_some(),
        message: abnormal.map_or_else(
            || "volume is exported and its LV is active".into(),
            ToString::to_string,
        ),
    }
}

impl ControllerService {
    async fn create(&self, req: CreateVolumeRequest) -> Result<CreateVolumeResponse> {
        record_ids(None, None);
        let ctx = match &self.backends {
            Backends::Local(ctx) => Ctx::clone(ctx),
            Backends::Agents(_) => return self.create_placed(req).await,
        };
        if !req.name.is_empty() {
            self.restored(csi_common::ids::LvName::for_volume(&req.name).as_str())?;
        }
        if let Some(volume_content_source::Type::Volume(source)) = req
            .volume_content_source
            .as_ref()
            .and_then(|s| s.r#type.as_ref())
        {
            self.restored(&source.volume_id)?;
        }
        let created = self
            .guarded(&self.names, &req.name.clone(), move |ctx| async move {
                let requisite: Vec<HashMap<String, String>> = req
                    .accessibility_requirements
                    .iter()
                    .flat_map(|r| &r.requisite)
                    .map(|t| t.segments.clone())
                    .collect();
                let op = CreateVolume {
                    name: &req.name,
                    capacity: req.capacity_range.as_ref(),
                    capabilities: &req.volume_capabilities,
                    parameters: &req.parameters,
                    requisite: &requisite,
                };
                // A content source without a type is the same as none (create_from_source
                // would refuse it as naming neither a snapshot nor a volume).
                match req
                    .volume_content_source
                    .as_ref()
                    .filter(|s| s.r#type.is_some())
                {
                    Some(source) => {
                        ops::create_from_source::create_from_source(&ctx, op, source).await
                    }
                    None => ops::create_volume::create_volume(&ctx, op).await,
                }
            })
            .await?;
        record_ids(Some(created.volume().id.as_str()), None);
        if let Created::AlreadyExisted(v) = &created {
            tracing::info!(volume = %v.id, "volume already existed");
        }
        Ok(CreateVolumeResponse {
            volume: Some(csi_volume(&ctx, created.volume())),
        })
    }

    /// CreateVolume across agents ([`crate::fleet::create`]), holding the name's guard.
    async fn create_placed(&self, req: CreateVolumeRequest) -> Result<CreateVolumeResponse> {
        let backends = self.backends.clone();
        let name = req.name.clone();
        let (agent, made) = self
            .names
            .run(&name, async move {
                crate::fleet::create::create_volume(&backends, &req).await
            })
            .await?;
        let volume = remote::volume(&agent, made.get());
        record_ids(Some(&volume.volume_id), None);
        if let crate::agent::Made::AlreadyExisted(_) = made {
            tracing::info!(volume = %volume.volume_id, agent = agent.name(), "volume already existed");
        }
        Ok(CreateVolumeResponse {
            volume: Some(volume),
        })
    }

    async fn delete(&self, req: DeleteVolumeRequest) -> Result<DeleteVolumeResponse> {
        let id = req.volume_id;
        if self.backends.resolve(&id, "volume_id")?.is_none() {
            record_ids(Some(&id), None);
            // spec.md, DeleteVolume: an id Carve never issued is a volume that does not exist
            // (OK); one naming a storage host not configured here may still hold data.
            if Backends::names_a_host(&id) {
                return Err(Backends::unresolved(&id, "volume"));
            }
            return Ok(DeleteVolumeResponse {});
        }
        self.on_volume(id, None, move |target| async move {
            match target.backend {
                Backend::Local(ctx) => {
                    ops::delete_volume::delete_volume(&ctx, &target.local).await?;
                }
                Backend::Agent(agent) => {
                    agent.client.delete_volume(&target.local).await?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(DeleteVolumeResponse {})
    }

    async fn publish(
        &self,
        req: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse> {
        let (id, node) = (req.volume_id.clone(), req.node_id.clone());
        let target = self
            .on_volume(id, Some(&node), move |target| async move {
                let op = Publish {
                    volume_id: &target.local,
                    node_id: &req.node_id,
                    capability: req.volume_capability.as_ref(),
                    readonly: req.readonly,
                    secrets: &req.secrets,
                };
                match target.backend {
                    Backend::Local(ctx) => ops::publish::publish(&ctx, op).await,
                    Backend::Agent(agent) => agent.client.publish(op).await,
                }
            })
            .await?;
        Ok(ControllerPublishVolumeResponse {
            publish_context: target.to_context(),
        })
    }

    async fn unpublish(
        &self,
        req: ControllerUnpublishVolumeRequest,
    ) -> Result<ControllerUnpublishVolumeResponse> {
        let (id, node) = (req.volume_id.clone(), req.node_id.clone());
        self.on_volume(id, Some(&node), move |target| async move {
            match target.backend {
                Backend::Local(ctx) => {
                    ops::unpublish::unpublish(&ctx, &target.local, &req.node_id).await
                }
                Backend::Agent(agent) => agent.client.unpublish(&target.local, &req.node_id).await,
            }
        })
        .await?;
        Ok(ControllerUnpublishVolumeResponse {})
    }

    #[allow(clippy::unnecessary_wraps, clippy::unused_self)] // the shape of every handler
    fn capabilities(
        &self,
        _: ControllerGetCapabilitiesRequest,
    ) -> Result<ControllerGetCapabilitiesResponse> {
        use controller_service_capability::{Rpc as RpcCap, Type};
        let capabilities = CAPABILITIES
            .iter()
            .map(|rpc| ControllerServiceCapability {
                r#type: Some(Type::Rpc(RpcCap {
                    r#type: *rpc as i32,
                })),
            })
            .collect();
        Ok(ControllerGetCapabilitiesResponse { capabilities })
    }

    #[allow(clippy::unused_self)] // the shape of every handler
    fn modify(
        &self,
        _: ControllerModifyVolumeRequest,
    ) -> Result<ControllerModifyVolumeResponse, Status> {
        Err(unimplemented_rpc("ControllerModifyVolume"))
    }
}

csi_common::grpc_service! {
    impl Controller for ControllerService {
        create_volume(CreateVolumeRequest) -> CreateVolumeResponse = create.await;
        delete_volume(DeleteVolumeRequest) -> DeleteVolumeResponse = delete.await;
        controller_publish_volume(ControllerPublishVolumeRequest) -> ControllerPublishVolumeResponse = publish.await;
        controller_unpublish_volume(ControllerUnpublishVolumeRequest) -> ControllerUnpublishVolumeResponse = unpublish.await;
        validate_volume_capabilities(ValidateVolumeCapabilitiesRequest) -> ValidateVolumeCapabilitiesResponse = validate.await;
        list_volumes(ListVolumesRequest) -> ListVolumesResponse = list.await;
        get_capacity(GetCapacityRequest) -> GetCapacityResponse = capacity.await;
        controller_get_volume(ControllerGetVolumeRequest) -> ControllerGetVolumeResponse = get.await;
        create_snapshot(CreateSnapshotRequest) -> CreateSnapshotResponse = take_snapshot.await;
        delete_snapshot(DeleteSnapshotRequest) -> DeleteSnapshotResponse = remove_snapshot.await;
        list_snapshots(ListSnapshotsRequest) -> ListSnapshotsResponse = snapshots.await;
        get_snapshot(GetSnapshotRequest) -> GetSnapshotResponse = snapshot.await;
        controller_expand_volume(ControllerExpandVolumeRequest) -> ControllerExpandVolumeResponse = expand.await;
        controller_get_capabilities(ControllerGetCapabilitiesRequest) -> ControllerGetCapabilitiesResponse = capabilities;
        controller_modify_volume(ControllerModifyVolumeRequest) -> ControllerModifyVolumeResponse = modify;
    }
}

/// RPCs whose capability is not advertised answer UNIMPLEMENTED (spec.md).
fn unimplemented_rpc(name: &str) -> Status {
    Status::unimplemented(format!("{name} is not supported by this controller"))
}

mod data_services;
mod inspect;

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
