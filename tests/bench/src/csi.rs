//! The CO's side: Carve's RPCs as external-provisioner, external-attacher and kubelet call
//! them (ABORTED retried), each returning what the next call needs.

use anyhow::{Context, Result, anyhow};
use carve_guest_tests::Driver;
use carvectl::request::{block_capability, capacity_range, mount_capability};
use csi_proto::v1::{
    ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, CreateVolumeRequest,
    DeleteVolumeRequest, NodePublishVolumeRequest, NodeStageVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, VolumeCapability,
    controller_client::ControllerClient, volume_capability::access_mode::Mode,
};
use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
use tonic::transport::Channel;

/// Every ABORTED answer retried so far.
pub static ABORTED_RETRIES: AtomicU64 = AtomicU64::new(0);

/// `rpc` with `req` on a handle of the driver's controller, retried while it answers ABORTED;
/// the answer.
async fn controller_call<Q, T, Fut>(
    driver: &Driver,
    req: Q,
    rpc: impl Fn(ControllerClient<Channel>, Q) -> Fut,
) -> Result<T>
where
    Q: Clone,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let c = driver.controller_rpc();
    let (resp, _) = retry_aborted(|| rpc(c.clone(), req.clone())).await?;
    Ok(resp.into_inner())
}

/// Volume kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ext4 filesystem.
    Ext4,
    /// Raw block device.
    Block,
}

/// The capability of `kind`.
pub fn capability(kind: Kind) -> VolumeCapability {
    match kind {
        Kind::Ext4 => mount_capability(Mode::SingleNodeWriter, "ext4", &[], ""),
        Kind::Block => block_capability(Mode::SingleNodeWriter),
    }
}

/// Retries `call` while it answers ABORTED (another call on the volume is in flight), as the
/// sidecars do; returns the result and how many retries it took.
pub async fn retry_aborted<T, F, Fut>(mut call: F) -> Result<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut retries = 0;
    loop {
        match call().await {
            Ok(v) => return Ok((v, retries)),
            Err(s) if s.code() == tonic::Code::Aborted && retries < 600 => {
                retries += 1;
                ABORTED_RETRIES.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => return Err(anyhow!("{:?}: {}", s.code(), s.message())),
        }
    }
}

/// A created volume.
#[derive(Debug, Clone)]
pub struct Vol {
    /// Volume id.
    pub id: String,
    /// volume_context.
    pub context: HashMap<String, String>,
    /// publish_context, once published.
    pub publish: HashMap<String, String>,
    /// Its kind.
    pub kind: Kind,
}

/// CreateVolume.
pub async fn create(
    driver: &Driver,
    name: &str,
    bytes: i64,
    thin: bool,
    kind: Kind,
) -> Result<Vol> {
    let req = CreateVolumeRequest {
        name: name.into(),
        capacity_range: capacity_range(bytes, 0),
        volume_capabilities: vec![capability(kind)],
        parameters: HashMap::from([("thin".to_string(), thin.to_string())]),
        ..Default::default()
    };
    let resp = controller_call(
        driver,
        req,
        |mut c, r| async move { c.create_volume(r).await },
    )
    .await
    .with_context(|| format!("CreateVolume {name}"))?;
    let v = resp.volume.context("no volume")?;
    Ok(Vol {
        id: v.volume_id,
        context: v.volume_context,
        publish: HashMap::new(),
        kind,
    })
}

/// ControllerPublishVolume to the lab's node.
pub async fn publish(driver: &Driver, vol: &mut Vol) -> Result<()> {
    let req = ControllerPublishVolumeRequest {
        volume_id: vol.id.clone(),
        node_id: driver.lab.initiator.clone(),
        volume_capability: Some(capability(vol.kind)),
        volume_context: vol.context.clone(),
        ..Default::default()
    };
    let resp = controller_call(driver, req, |mut c, r| async move {
        c.controller_publish_volume(r).await
    })
    .await
    .with_context(|| format!("ControllerPublish {}", vol.id))?;
    vol.publish = resp.publish_context;
    Ok(())
}

/// ControllerUnpublishVolume from the lab's node.
pub async fn unpublish(driver: &Driver, id: &str) -> Result<()> {
    let req = ControllerUnpublishVolumeRequest {
        volume_id: id.into(),
        node_id: driver.lab.initiator.clone(),
        ..Default::default()
    };
    controller_call(driver, req, |mut c, r| async move {
        c.controller_unpublish_volume(r).await
    })
    .await
    .with_context(|| format!("ControllerUnpublish {id}"))?;
    Ok(())
}

/// DeleteVolume.
pub async fn delete(driver: &Driver, id: &str) -> Result<()> {
    let req = DeleteVolumeRequest {
        volume_id: id.into(),
        ..Default::default()
    };
    controller_call(
        driver,
        req,
        |mut c, r| async move { c.delete_volume(r).await },
    )
    .await
    .with_context(|| format!("DeleteVolume {id}"))?;
    Ok(())
}

/// NodeStageVolume.
pub async fn stage(driver: &Driver, vol: &Vol) -> Result<()> {
    let mut n = driver.node.node.clone();
    n.node_stage_volume(NodeStageVolumeRequest {
        volume_id: vol.id.clone(),
        publish_context: vol.publish.clone(),
        staging_target_path: driver.staging_path(&vol.id).display().to_string(),
        volume_capability: Some(capability(vol.kind)),
        volume_context: vol.context.clone(),
        ..Default::default()
    })
    .await
    .map_err(node_error("NodeStage", vol))?;
    Ok(())
}

/// NodePublishVolume; returns the target path.
pub async fn node_publish(driver: &Driver, vol: &Vol) -> Result<String> {
    let target = driver.target_path(&vol.id).display().to_string();
    let mut n = driver.node.node.clone();
    n.node_publish_volume(NodePublishVolumeRequest {
        volume_id: vol.id.clone(),
        publish_context: vol.publish.clone(),
        staging_target_path: driver.staging_path(&vol.id).display().to_string(),
        target_path: target.clone(),
        volume_capability: Some(capability(vol.kind)),
        volume_context: vol.context.clone(),
        ..Default::default()
    })
    .await
    .map_err(node_error("NodePublish", vol))?;
    Ok(target)
}

/// NodeUnpublishVolume.
pub async fn node_unpublish(driver: &Driver, vol: &Vol) -> Result<()> {
    let mut n = driver.node.node.clone();
    n.node_unpublish_volume(NodeUnpublishVolumeRequest {
        volume_id: vol.id.clone(),
        target_path: driver.target_path(&vol.id).display().to_string(),
    })
    .await
    .map_err(node_error("NodeUnpublish", vol))?;
    Ok(())
}

/// NodeUnstageVolume.
pub async fn unstage(driver: &Driver, vol: &Vol) -> Result<()> {
    let mut n = driver.node.node.clone();
    n.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: vol.id.clone(),
        staging_target_path: driver.staging_path(&vol.id).display().to_string(),
    })
    .await
    .map_err(node_error("NodeUnstage", vol))?;
    Ok(())
}

/// The error of node RPC `what` on `vol`: its code and message.
fn node_error(what: &'static str, vol: &Vol) -> impl FnOnce(tonic::Status) -> anyhow::Error {
    let id = vol.id.clone();
    move |s| anyhow!("{what} {id}: {:?}: {}", s.code(), s.message())
}

/// Per-step samples, by step name (a Carve RPC's name, or a floor step's).
pub type Samples = BTreeMap<&'static str, Vec<Duration>>;

/// Runs the async step `f`, adds its time to `samples` under `name`; its value.
pub async fn record<T>(
    samples: &mut Samples,
    name: &'static str,
    f: impl Future<Output = Result<T>>,
) -> Result<T> {
    let (v, d) = time(f).await?;
    samples.entry(name).or_default().push(d);
    Ok(v)
}

/// Times an async step.
pub async fn time<T>(f: impl Future<Output = Result<T>>) -> Result<(T, Duration)> {
    let t = std::time::Instant::now();
    let v = f.await?;
    Ok((v, t.elapsed()))
}
