//! A volume's life through the real plugins, as the CO drives it, shared by the scenario files:
//! CreateVolume (+ ControllerPublish), NodeStage + NodePublish with kubelet's paths, the way
//! back, expansion, stats. What the storage side shows of it is in [`crate::storage`].
//!
//! Here: the volume ([`Vol`], with the requests the node plugin is sent for it), what
//! CreateVolume asks for ([`Spec`]) and the CO's whole ways there and back ([`provision`] with
//! data, [`teardown`]); the Controller RPCs are in volume/controller.rs, the Node RPCs in
//! volume/node.rs (both re-exported here).
//!
//! Every helper that is not `Result`-returning panics with the plugins' logs, so a failing
//! scenario shows why.

mod controller;
mod node;

pub use controller::*;
pub use node::*;

use crate::{Driver, checksum};
use carvectl::request::{
    block_capability, capacity_range, from_snapshot, from_volume, mount_capability,
};
use csi_proto::v1::{
    CreateVolumeRequest, NodeGetVolumeStatsRequest, NodePublishVolumeRequest,
    NodeStageVolumeRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, Snapshot, Volume,
    VolumeCapability, VolumeContentSource, volume_capability::access_mode::Mode,
};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

/// One mebibyte, in bytes.
pub const MIB: i64 = 1024 * 1024;
/// One mebibyte, as a buffer length.
pub const MIB_LEN: usize = 1024 * 1024;
/// Bytes of checksummed data a scenario writes.
pub const DATA_LEN: usize = 8 * 1024 * 1024;
/// Bytes of checksummed data a scenario writes to a block volume's device.
pub const BLOCK_DATA_LEN: usize = 4 * 1024 * 1024;

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

/// What a CreateVolume asks for: [`Spec::new`] (a thin volume), then what differs.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The volume's name (the CO's idempotency key).
    pub name: String,
    /// capacity_range.required_bytes (0: none).
    pub size: i64,
    /// volume_capabilities; the [`Vol`] keeps the first.
    pub caps: Vec<VolumeCapability>,
    /// A thin LV (the StorageClass parameter `thin`) or a linear one.
    pub thin: bool,
    /// volume_content_source.
    pub source: Option<VolumeContentSource>,
}

impl Spec {
    /// A thin volume `name` of `size` bytes (0: no range) for `cap`, from no source.
    pub fn new(name: &str, size: i64, cap: VolumeCapability) -> Self {
        Self {
            name: name.into(),
            size,
            caps: vec![cap],
            thin: true,
            source: None,
        }
    }

    /// A thin (`true`) or linear LV.
    pub fn thin(self, thin: bool) -> Self {
        Self { thin, ..self }
    }

    /// For every capability of `caps` (the [`Vol`] keeps the first).
    pub fn caps(self, caps: &[VolumeCapability]) -> Self {
        Self {
            caps: caps.to_vec(),
            ..self
        }
    }

    /// A clone of `vol`.
    pub fn clone_of(self, vol: &Vol) -> Self {
        Self {
            source: Some(from_volume(&vol.id)),
            ..self
        }
    }

    /// A restore of `snap` (as CreateSnapshot answered it).
    pub fn restore_of(self, snap: &Snapshot) -> Self {
        Self {
            source: Some(from_snapshot(&snap.snapshot_id)),
            ..self
        }
    }

    /// The CreateVolume request.
    pub fn request(&self) -> CreateVolumeRequest {
        CreateVolumeRequest {
            name: self.name.clone(),
            capacity_range: capacity_range(self.size, 0),
            volume_capabilities: self.caps.clone(),
            parameters: thin(self.thin),
            volume_content_source: self.source.clone(),
            ..Default::default()
        }
    }
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
    /// Its LV on the storage side (the same machine in the lab).
    pub lv: PathBuf,
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
            lv: PathBuf::from(format!("/dev/{}/{id}", driver.lab.vg)),
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

    /// The target IQN from the publish context.
    pub fn target_iqn(&self) -> &str {
        &self.publish["targetIqn"]
    }
}

/// CreateVolume of `spec` + ControllerPublish to this node.
pub async fn provision(driver: &Driver, spec: Spec) -> Vol {
    let created = create(driver, &spec).await;
    let mut vol = driver.ok(format_args!("CreateVolume {}", spec.name), created);
    vol.publish = controller_publish(driver, &vol, &driver.lab.initiator, HashMap::new()).await;
    vol
}

/// [`provision`] + [`stage_publish`] through the driver's node, then [`DATA_LEN`] bytes of
/// `seed` written to `data.bin` in it: the volume and the data's checksum.
pub async fn provision_with_data(driver: &Driver, spec: Spec, seed: u64) -> (Vol, String) {
    let vol = provision(driver, spec).await;
    stage_publish(driver, &driver.node, &vol).await;
    let written = checksum::write_file(&vol.target.join("data.bin"), DATA_LEN, seed);
    (vol, written)
}

/// A thin block volume `name` of 32 MiB, [`provision`]ed, staged and published through the
/// driver's node, whose device shows its capacity, then [`BLOCK_DATA_LEN`] bytes of `seed`
/// written to the device: the volume and the data's checksum.
pub async fn provision_block_with_data(driver: &Driver, name: &str, seed: u64) -> (Vol, String) {
    let vol = provision(driver, Spec::new(name, 32 * MIB, block())).await;
    stage_publish(driver, &driver.node, &vol).await;
    let written = checksum::write_device(&vol.target, BLOCK_DATA_LEN, seed);
    assert_eq!(crate::storage::device_size(&vol.target), vol.capacity);
    (vol, written)
}

/// [`unpublish_unstage`] through the driver's node + [`retire`] from this node: the CO's
/// whole way back.
pub async fn teardown(driver: &Driver, vol: &Vol) {
    teardown_all(driver, &[vol]).await;
}

/// [`teardown`] of several volumes: [`unpublish_unstage`] of each in turn, then [`retire`] of
/// each in turn.
pub async fn teardown_all(driver: &Driver, vols: &[&Vol]) {
    for vol in vols {
        unpublish_unstage(driver, &driver.node, vol).await;
    }
    for vol in vols {
        retire(driver, vol, &driver.lab.initiator).await;
    }
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
