//! The data-service RPCs of the Controller service (ControllerExpandVolume, CreateSnapshot,
//! DeleteSnapshot, ListSnapshots, GetSnapshot): thin translation to `ops`, kept apart from
//! [`super`] (`service.rs`).
//!
//! Invariants: as in `service.rs`: ids on the RPC span first; mutating RPCs hold a guard
//! (ControllerExpandVolume: the volume's; CreateSnapshot and DeleteSnapshot: the snapshot id's,
//! which CreateSnapshot derives from the name) in a spawned task that owns it, so a client
//! timeout never cancels an LVM change halfway and a second call in flight is ABORTED.

use super::ControllerService;
use crate::ops::{
    self,
    snapshot::{
        create::{CreateSnapshot, SnapshotCreated, id_for},
        list::ListSnapshots,
    },
};
use csi_common::telemetry::record_ids;
use csi_proto::v1::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse, CreateSnapshotRequest,
    CreateSnapshotResponse, DeleteSnapshotRequest, DeleteSnapshotResponse, GetSnapshotRequest,
    GetSnapshotResponse, ListSnapshotsRequest, ListSnapshotsResponse, list_snapshots_response,
};
use tonic::{Request, Response, Status};

pub(super) async fn controller_expand_volume(
    svc: &ControllerService,
    request: Request<ControllerExpandVolumeRequest>,
) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
    let req = request.into_inner();
    record_ids(Some(&req.volume_id), None);
    svc.restored(&req.volume_id)?;
    let id = req.volume_id.clone();
    let expanded = svc
        .guarded(&svc.volumes, &id, move |ctx| async move {
            ops::expand_volume::expand_volume(
                &ctx,
                &req.volume_id,
                req.capacity_range.as_ref(),
                req.volume_capability.as_ref(),
            )
            .await
        })
        .await?;
    Ok(Response::new(ControllerExpandVolumeResponse {
        capacity_bytes: i64::try_from(expanded.capacity).unwrap_or(i64::MAX),
        node_expansion_required: expanded.node_expansion_required,
    }))
}

pub(super) async fn create_snapshot(
    svc: &ControllerService,
    request: Request<CreateSnapshotRequest>,
) -> Result<Response<CreateSnapshotResponse>, Status> {
    let req = request.into_inner();
    record_ids(Some(&req.source_volume_id), None);
    svc.restored(&req.source_volume_id)?;
    let key = id_for(&req.name).to_string();
    let created = svc
        .guarded(&svc.snapshots, &key, move |ctx| async move {
            let op = CreateSnapshot {
                name: &req.name,
                source_volume_id: &req.source_volume_id,
                parameters: &req.parameters,
            };
            ops::snapshot::create::create_snapshot(&ctx, op).await
        })
        .await?;
    if let SnapshotCreated::AlreadyExisted(s) = &created {
        tracing::info!(snapshot = %s.id, "snapshot already existed");
    }
    Ok(Response::new(CreateSnapshotResponse {
        snapshot: Some(created.snapshot().to_csi()),
    }))
}

pub(super) async fn delete_snapshot(
    svc: &ControllerService,
    request: Request<DeleteSnapshotRequest>,
) -> Result<Response<DeleteSnapshotResponse>, Status> {
    let req = request.into_inner();
    tracing::debug!(snapshot = %req.snapshot_id, "deleting snapshot");
    let key = req.snapshot_id.clone();
    svc.guarded(&svc.snapshots, &key, move |ctx| async move {
        ops::snapshot::delete::delete_snapshot(&ctx, &req.snapshot_id).await
    })
    .await?;
    Ok(Response::new(DeleteSnapshotResponse {}))
}

pub(super) async fn list_snapshots(
    svc: &ControllerService,
    request: Request<ListSnapshotsRequest>,
) -> Result<Response<ListSnapshotsResponse>, Status> {
    let req = request.into_inner();
    let op = ListSnapshots {
        max_entries: req.max_entries,
        starting_token: &req.starting_token,
        source_volume_id: &req.source_volume_id,
        snapshot_id: &req.snapshot_id,
    };
    let page = ops::snapshot::list::list_snapshots(&svc.ctx, op).await?;
    Ok(Response::new(ListSnapshotsResponse {
        entries: page
            .entries
            .iter()
            .map(|s| list_snapshots_response::Entry {
                snapshot: Some(s.to_csi()),
            })
            .collect(),
        next_token: page.next_token,
    }))
}

pub(super) async fn get_snapshot(
    svc: &ControllerService,
    request: Request<GetSnapshotRequest>,
) -> Result<Response<GetSnapshotResponse>, Status> {
    let req = request.into_inner();
    let snapshot = ops::snapshot::list::get_snapshot(&svc.ctx, &req.snapshot_id).await?;
    Ok(Response::new(GetSnapshotResponse {
        snapshot: Some(snapshot.to_csi()),
    }))
}
