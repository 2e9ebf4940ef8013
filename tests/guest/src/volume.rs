//! A volume's life through the real plugins, as the CO drives it, shared by the scenario files:
//! CreateVolume (+ ControllerPublish), NodeStage + NodePublish with kubelet's paths, the way
//! back, expansion, stats. What the storage side shows of it is in [`crate::storage`].
//!
//! Every helper that is not `Result`-returning panics with the plugins' logs, so a failing
//! scenario shows why.

use crate::{Driver, Lab, checksum};
use carvectl::{
    Client,
    request::{block_capability, capacity_range, mount_capability},
};
use csi_proto::v1::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse, ControllerPublishVolumeRequest,
    ControllerUnpublishVolumeRequest, CreateSnapshotRequest, CreateVolumeRequest,
    DeleteSnapshotRequest, DeleteVolumeRequest, ListVolumesRequest, NodeExpandVolumeRequest,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodeStageVolumeRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, Snapshot, Volume,
    VolumeCapability, VolumeContentSource, list_volumes_response::Entry,
    volume_capability::access_mode::Mode, volume_usage::Unit,
};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use tonic::Status;

/// One mebibyte, in bytes.
pub const MIB: i64 = 1024 * 1024;
/// One mebibyte, as a buffer length.
pub const MIB_LEN: usize = 1024 * 1024;
/// Bytes of checksummed data a scenario writes.
pub const DATA_LEN: usize = 8 * 1024 * 1024;

/// A single-node-writer ext4 mount.
pub fn ext4() -> VolumeCapability {
    mount_capability(Mode::SingleNodeWriter, "ext4", &[], "")
}

/// A single-node-writer XFS mount.
pub fn xfs() -> VolumeCapability {
    mount_capability(Mode::SingleNodeWriter, "xfs", &[], "")
}

/// A single-node-writer raw block device.
pub fn block() -> VolumeCapability {
    block_capability(Mode::SingleNodeWriter)
}

/// The StorageClass parameters of a thin (`true`) or linear volume.
pub fn thin(on: bool) -> HashMap<String, String> {
    HashMap::from([("thin".to_string(), on.to_string())])
}

/// A volume created by the controller and published to one node, with the paths kubelet
/// would give it.
#[derive(Debug, Clone)]
pub struct Vol {
    /// The volume id.
    pub id: String,
    /// capacity_bytes as CreateVolume answered.
    pub capacity: i64,
    /// volume_context.
    pub context: HashMap<String, String>,
    /// publish_context (empty until published).
    pub publish: HashMap<String, String>,
    /// The capability it was created with.
    pub cap: VolumeCapability,
    /// Kubelet's staging path for it.
    pub staging: PathBuf,
    /// Kubelet's target path for it.
    pub target: PathBuf,
}

impl Vol {
    /// The volume a CreateVolume answered, for `cap`, not yet published, with kubelet's paths.
    pub fn created(driver: &Driver, created: Volume, cap: &VolumeCapability) -> Self {
        let id = created.volume_id;
        Self {
            capacity: created.capacity_bytes,
            context: created.volume_context,
            publish: HashMap::new(),
            cap: cap.clone(),
            staging: driver.staging_path(&id),
            target: driver.target_path(&id),
            id,
        }
    }

    /// NodeStage with another capability than the one it was created with.
    pub fn stage_as(&self, cap: &VolumeCapability) -> NodeStageVolumeRequest {
        NodeStageVolumeRequest {
            volume_id: self.id.clone(),
            publish_context: self.publish.clone(),
            staging_target_path: self.staging.display().to_string(),
            volume_capability: Some(cap.clone()),
            volume_context: self.context.clone(),
            ..Default::default()
        }
    }

    /// NodeStage.
    pub fn stage(&self) -> NodeStageVolumeRequest {
        self.stage_as(&self.cap)
    }

    /// NodePublish at another target path, with another capability, read-only or not.
    pub fn publish_at(
        &self,
        cap: &VolumeCapability,
        target: &Path,
        readonly: bool,
    ) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: self.id.clone(),
            publish_context: self.publish.clone(),
            staging_target_path: self.staging.display().to_string(),
            target_path: target.display().to_string(),
            volume_capability: Some(cap.clone()),
            readonly,
            volume_context: self.context.clone(),
            ..Default::default()
        }
    }

    /// NodePublish.
    pub fn publish(&self) -> NodePublishVolumeRequest {
        self.publish_at(&self.cap, &self.target, false)
    }

    /// NodeUnpublish of another target path.
    pub fn unpublish_at(&self, target: &Path) -> NodeUnpublishVolumeRequest {
        NodeUnpublishVolumeRequest {
            volume_id: self.id.clone(),
            target_path: target.display().to_string(),
        }
    }

    /// NodeUnpublish.
    pub fn unpublish(&self) -> NodeUnpublishVolumeRequest {
        self.unpublish_at(&self.target)
    }

    /// NodeUnstage.
    pub fn unstage(&self) -> NodeUnstageVolumeRequest {
        NodeUnstageVolumeRequest {
            volume_id: self.id.clone(),
            staging_target_path: self.staging.display().to_string(),
        }
    }

    /// NodeGetVolumeStats of `path`.
    pub fn stats(&self, path: &Path) -> NodeGetVolumeStatsRequest {
        NodeGetVolumeStatsRequest {
            volume_id: self.id.clone(),
            volume_path: path.display().to_string(),
            staging_target_path: self.staging.display().to_string(),
        }
    }

    /// The LV on the storage side (the same machine in the lab).
    pub fn lv(&self, lab: &Lab) -> PathBuf {
        PathBuf::from(format!("/dev/{}/{}", lab.vg, self.id))
    }

    /// The target IQN from the publish context.
    pub fn target_iqn(&self) -> &str {
        &self.publish["targetIqn"]
    }
}

/// CreateVolume of `size` bytes for `cap`, thin or linear, from `source` if any.
pub async fn create(
    driver: &Driver,
    name: &str,
    size: i64,
    cap: &VolumeCapability,
    thin_lv: bool,
    source: Option<VolumeContentSource>,
) -> Result<Vol, tonic::Status> {
    create_for(
        driver,
        name,
        size,
        std::slice::from_ref(cap),
        thin_lv,
        source,
    )
    .await
}

/// CreateVolume of `size` bytes for every capability of `caps` (the [`Vol`] keeps the first),
/// thin or linear, from `source` if any.
pub async fn create_for(
    driver: &Driver,
    name: &str,
    size: i64,
    caps: &[VolumeCapability],
    thin_lv: bool,
    source: Option<VolumeContentSource>,
) -> Result<Vol, tonic::Status> {
    let created = driver
        .controller_rpc()
        .create_volume(CreateVolumeRequest {
            name: name.into(),
            capacity_range: capacity_range(size, 0),
            volume_capabilities: caps.to_vec(),
            parameters: thin(thin_lv),
            volume_content_source: source,
            ..Default::default()
        })
        .await?
        .into_inner()
        .volume
        .expect("volume");
    Ok(Vol::created(driver, created, &caps[0]))
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

/// CreateVolume (thin or linear, from `source` if any) + ControllerPublish to this node.
pub async fn provision(
    driver: &Driver,
    name: &str,
    size: i64,
    cap: &VolumeCapability,
    thin_lv: bool,
    source: Option<VolumeContentSource>,
) -> Vol {
    let created = create(driver, name, size, cap, thin_lv, source).await;
    let mut vol = driver.ok(format_args!("CreateVolume {name}"), created);
    vol.publish = controller_publish(driver, &vol, &driver.lab.initiator, HashMap::new()).await;
    vol
}

/// [`provision`] + [`stage_publish`] through the driver's node, then [`DATA_LEN`] bytes of
/// `seed` written to `data.bin` in it: the volume and the data's checksum.
pub async fn provision_with_data(
    driver: &Driver,
    name: &str,
    size: i64,
    cap: &VolumeCapability,
    thin_lv: bool,
    seed: u64,
) -> (Vol, String) {
    let vol = provision(driver, name, size, cap, thin_lv, None).await;
    stage_publish(driver, &driver.node, &vol).await;
    let written = checksum::write_file(&vol.target.join("data.bin"), DATA_LEN, seed);
    (vol, written)
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

/// NodeStage + NodePublish through `node`; how long NodeStage took.
pub async fn stage_publish(driver: &Driver, node: &Client, vol: &Vol) -> Duration {
    let mut node = node.node.clone();
    let started = Instant::now();
    let staged = node.node_stage_volume(vol.stage()).await;
    driver.ok(format_args!("NodeStage {}", vol.id), staged);
    let took = started.elapsed();
    let published = node.node_publish_volume(vol.publish()).await;
    driver.ok(format_args!("NodePublish {}", vol.id), published);
    took
}

/// NodeUnpublish + NodeUnstage through `node`.
pub async fn unpublish_unstage(driver: &Driver, node: &Client, vol: &Vol) {
    let mut node = node.node.clone();
    let unpublished = node.node_unpublish_volume(vol.unpublish()).await;
    driver.ok(format_args!("NodeUnpublish {}", vol.id), unpublished);
    let unstaged = node.node_unstage_volume(vol.unstage()).await;
    driver.ok(format_args!("NodeUnstage {}", vol.id), unstaged);
}

/// The end of a growth scenario: 2 × [`DATA_LEN`] more bytes in `more.bin` of the grown
/// filesystem; an unstage and restage (fsck runs for ext4) through the driver's node keep them
/// and `data.bin` (checksum `written`); then [`teardown`].
pub async fn grown_keeps_data(driver: &Driver, vol: &Vol, written: &str) {
    let more = checksum::write_file(&vol.target.join("more.bin"), 2 * DATA_LEN, 22);
    unpublish_unstage(driver, &driver.node, vol).await;
    stage_publish(driver, &driver.node, vol).await;
    assert_eq!(checksum::file_sha256(&vol.target.join("data.bin")), written);
    assert_eq!(checksum::file_sha256(&vol.target.join("more.bin")), more);
    teardown(driver, vol).await;
}

/// NodeStage through the driver's node plugin; its refusal, if any.
pub async fn try_stage(driver: &Driver, req: NodeStageVolumeRequest) -> Result<(), Status> {
    driver.node_rpc().node_stage_volume(req).await?;
    Ok(())
}

/// NodePublish through the driver's node plugin; its refusal, if any.
pub async fn try_publish(driver: &Driver, req: NodePublishVolumeRequest) -> Result<(), Status> {
    driver.node_rpc().node_publish_volume(req).await?;
    Ok(())
}

/// [`unpublish_unstage`] through the driver's node + [`retire`] from this node: the CO's
/// whole way back.
pub async fn teardown(driver: &Driver, vol: &Vol) {
    unpublish_unstage(driver, &driver.node, vol).await;
    retire(driver, vol, &driver.lab.initiator).await;
}

/// NodeUnstage through the driver's node plugin; its refusal, if any.
pub async fn try_unstage(driver: &Driver, req: NodeUnstageVolumeRequest) -> Result<(), Status> {
    driver.node_rpc().node_unstage_volume(req).await?;
    Ok(())
}

/// NodeStage through the driver's node plugin.
pub async fn node_stage(driver: &Driver, req: NodeStageVolumeRequest) {
    driver.ok("NodeStage", try_stage(driver, req).await);
}

/// NodeUnstage through the driver's node plugin.
pub async fn node_unstage(driver: &Driver, req: NodeUnstageVolumeRequest) {
    driver.ok("NodeUnstage", try_unstage(driver, req).await);
}

/// NodePublish through the driver's node plugin.
pub async fn node_publish(driver: &Driver, req: NodePublishVolumeRequest) {
    driver.ok("NodePublish", try_publish(driver, req).await);
}

/// NodeUnpublish through the driver's node plugin.
pub async fn node_unpublish(driver: &Driver, req: NodeUnpublishVolumeRequest) {
    let answer = driver.node_rpc().node_unpublish_volume(req).await;
    driver.ok("NodeUnpublish", answer);
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

/// NodeExpandVolume to `required` bytes; the capacity the node answers.
pub async fn node_expand(driver: &Driver, vol: &Vol, required: i64) -> i64 {
    let req = NodeExpandVolumeRequest {
        volume_id: vol.id.clone(),
        volume_path: vol.target.display().to_string(),
        staging_target_path: vol.staging.display().to_string(),
        capacity_range: capacity_range(required, 0),
        volume_capability: Some(vol.cap.clone()),
        ..Default::default()
    };
    let answer = driver.node_rpc().node_expand_volume(req).await;
    driver
        .ok("NodeExpandVolume", answer)
        .into_inner()
        .capacity_bytes
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

/// DeleteSnapshot of `id`.
pub async fn delete_snapshot(driver: &Driver, id: &str) {
    let req = DeleteSnapshotRequest {
        snapshot_id: id.into(),
        ..Default::default()
    };
    let answer = driver.controller_rpc().delete_snapshot(req).await;
    driver.ok(format_args!("DeleteSnapshot {id}"), answer);
}

/// NodeGetVolumeStats through the driver's node plugin.
pub async fn stats(driver: &Driver, req: NodeGetVolumeStatsRequest) -> NodeGetVolumeStatsResponse {
    let answer = driver.node_rpc().node_get_volume_stats(req).await;
    driver.ok("NodeGetVolumeStats", answer).into_inner()
}

/// The volume condition in a NodeGetVolumeStats answer: `(abnormal, message)`.
pub async fn condition(driver: &Driver, req: NodeGetVolumeStatsRequest) -> (bool, String) {
    let c = stats(driver, req)
        .await
        .volume_condition
        .expect("condition");
    (c.abnormal, c.message)
}

/// (total, used, available) of `unit` in a stats answer.
pub fn usage(stats: &NodeGetVolumeStatsResponse, unit: Unit) -> (i64, i64, i64) {
    let u = stats
        .usage
        .iter()
        .find(|u| u.unit == unit as i32)
        .unwrap_or_else(|| panic!("no {unit:?} usage in {stats:?}"));
    (u.total, u.used, u.available)
}

/// Total bytes of the mounted filesystem, as the node reports it (statvfs).
pub async fn fs_total(driver: &Driver, vol: &Vol) -> i64 {
    usage(&stats(driver, vol.stats(&vol.target)).await, Unit::Bytes).0
}
