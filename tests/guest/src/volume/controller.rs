//! The Controller RPCs of a volume's life, through the driver's controller: CreateVolume,
//! ControllerPublish and Unpublish, DeleteVolume, ListVolumes, ControllerExpandVolume,
//! CreateSnapshot and DeleteSnapshot.

use super::{Spec, Vol};
use crate::Driver;
use carvectl::request::capacity_range;
use csi_proto::v1::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse, ControllerPublishVolumeRequest,
    ControllerUnpublishVolumeRequest, CreateSnapshotRequest, DeleteSnapshotRequest,
    DeleteVolumeRequest, ListVolumesRequest, Snapshot, list_volumes_response::Entry,
};
use std::collections::HashMap;

/// CreateVolume of `spec`: the volume, not yet published; the refusal, if any.
pub async fn create(driver: &Driver, spec: &Spec) -> Result<Vol, tonic::Status> {
    let created = driver
        .controller_rpc()
        .create_volume(spec.request())
        .await?
        .into_inner()
        .volume
        .expect("volume");
    Ok(Vol::created(driver, created, &spec.caps[0]))
}

/// ControllerPublish of `vol` to `node_id` with `secrets`; the publish context.
pub async fn controller_publish(
    driver: &Driver,
    vol: &Vol,
    node_id: &str,
    secrets: HashMap<String, String>,
) -> HashMap<String, String> {
    let req = ControllerPublishVolumeRequest {
        volume_id: vol.id.clone(),
        node_id: node_id.into(),
        volume_capability: Some(vol.cap.clone()),
        volume_context: vol.context.clone(),
        secrets,
        ..Default::default()
    };
    controller_publish_with(driver, req).await
}

/// ControllerPublish of a request built by hand (read-only, another capability); the publish
/// context.
pub async fn controller_publish_with(
    driver: &Driver,
    req: ControllerPublishVolumeRequest,
) -> HashMap<String, String> {
    let answer = driver.controller_rpc().controller_publish_volume(req).await;
    driver
        .ok("ControllerPublish", answer)
        .into_inner()
        .publish_context
}

/// ControllerUnpublish of `vol` from `node_id`.
pub async fn controller_unpublish(driver: &Driver, vol: &Vol, node_id: &str) {
    let req = ControllerUnpublishVolumeRequest {
        volume_id: vol.id.clone(),
        node_id: node_id.into(),
        ..Default::default()
    };
    let answer = driver
        .controller_rpc()
        .controller_unpublish_volume(req)
        .await;
    driver.ok("ControllerUnpublish", answer);
}

/// DeleteVolume of `id`.
pub async fn delete_volume(driver: &Driver, id: &str) {
    let req = DeleteVolumeRequest {
        volume_id: id.into(),
        ..Default::default()
    };
    let answer = driver.controller_rpc().delete_volume(req).await;
    driver.ok(format_args!("DeleteVolume {id}"), answer);
}

/// ListVolumes (one page): the entry of volume `id`; panics unless it is listed.
pub async fn list_entry(driver: &Driver, id: &str) -> Entry {
    let answer = driver
        .controller_rpc()
        .list_volumes(ListVolumesRequest::default())
        .await;
    let listed = driver.ok("ListVolumes", answer).into_inner();
    listed
        .entries
        .into_iter()
        .find(|e| e.volume.as_ref().expect("an entry's volume").volume_id == id)
        .expect("listed")
}

/// ControllerUnpublish from `node_id` + DeleteVolume.
pub async fn retire(driver: &Driver, vol: &Vol, node_id: &str) {
    controller_unpublish(driver, vol, node_id).await;
    delete_volume(driver, &vol.id).await;
}

/// ControllerExpandVolume to `required`..`limit` bytes.
pub async fn controller_expand(
    driver: &Driver,
    vol: &Vol,
    required: i64,
    limit: i64,
) -> Result<ControllerExpandVolumeResponse, tonic::Status> {
    driver
        .controller_rpc()
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: vol.id.clone(),
            capacity_range: capacity_range(required, limit),
            volume_capability: Some(vol.cap.clone()),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// CreateSnapshot `name` of the volume `source`.
pub async fn create_snapshot(
    driver: &Driver,
    name: &str,
    source: &str,
) -> Result<Snapshot, tonic::Status> {
    driver
        .controller_rpc()
        .create_snapshot(CreateSnapshotRequest {
            source_volume_id: source.into(),
            name: name.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().snapshot.expect("snapshot"))
}

/// CreateSnapshot `name` of `source`: the snapshot.
pub async fn snapshot(driver: &Driver, name: &str, source: &Vol) -> Snapshot {
    let answer = create_snapshot(driver, name, &source.id).await;
    driver.ok(format_args!("CreateSnapshot {name}"), answer)
}

/// DeleteSnapshot of `snap` (as CreateSnapshot answered it).
pub async fn delete_snapshot(driver: &Driver, snap: &Snapshot) {
    let req = DeleteSnapshotRequest {
        snapshot_id: snap.snapshot_id.clone(),
        ..Default::default()
    };
    let answer = driver.controller_rpc().delete_snapshot(req).await;
    driver.ok(format_args!("DeleteSnapshot {}", snap.snapshot_id), answer);
}
