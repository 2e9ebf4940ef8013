//! The Node RPCs of a volume's life, through the driver's node plugin (or another node's
//! client): NodeStage + NodePublish and the way back, each alone and as a `Result` for the
//! scenarios that expect a refusal, NodeExpandVolume and NodeGetVolumeStats.

use super::Vol;
use crate::Driver;
use carvectl::{Client, request::capacity_range};
use csi_proto::v1::{
    NodeExpandVolumeRequest, NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse,
    NodePublishVolumeRequest, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
    NodeUnstageVolumeRequest, volume_usage::Unit,
};
use std::time::{Duration, Instant};
use tonic::Status;

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
