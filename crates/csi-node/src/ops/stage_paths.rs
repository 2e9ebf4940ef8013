//! The multipath half of NodeStageVolume: which portals a new stage uses, and assembling the
//! verified paths into their dm-multipath map.
//!
//! Invariants: a map is planned only with a WWID derived from the volume's serial (so every
//! path can be checked against it); [`assemble`] is called only with paths whose serial and
//! WWID were verified, and answers only a map that holds all of them and has its by-id node.

use super::NodeCore;
use crate::device::{Device, matcher};
use csi_common::{
    Error, Result,
    contract::{IscsiTarget, validate_portal},
};
use std::net::SocketAddr;

/// The portals a new stage logs in to and the WWID of its map (`None`: single path): every
/// portal of the publish context with a map when `--multipath` wants one for that many
/// portals, else the first portal alone.
pub fn plan(core: &NodeCore, target: &IscsiTarget) -> Result<(Vec<SocketAddr>, Option<String>)> {
    let all = target
        .portals
        .iter()
        .map(|p| validate_portal(p))
        .collect::<Result<Vec<_>>>()?;
    if !core.multipath_mode.wants_map(all.len()) {
        return Ok((all.into_iter().take(1).collect(), None));
    }
    let wwid = matcher::expected_wwid(&target.serial).ok_or_else(|| {
        Error::failed_precondition(format!(
            "serial {:?} has too few hex digits to derive the LUN's WWID: cannot verify a multipath map",
            target.serial
        ))
    })?;
    Ok((all, Some(wwid)))
}

/// The multipath map of `wwid` with (at least) every one of `paths` in it, assembled if needed:
/// Carve's drop-in checked, the WWID registered and the missing paths handed to multipathd,
/// then up to `device_timeout` for the map (sysfs) and its by-id node (udev). The caller
/// verified each path's serial and WWID before.
pub async fn assemble(core: &NodeCore, wwid: &str, paths: &[Device]) -> Result<Device> {
    core.multipath.ensure_config().await?;
    let members = core
        .multipath
        .map(wwid)
        .map(|m| core.multipath.paths_of(&m))
        .unwrap_or_default();
    let missing: Vec<Device> = paths
        .iter()
        .filter(|p| !members.contains(&p.name))
        .cloned()
        .collect();
    if !missing.is_empty() {
        core.multipath.assemble(&missing).await?;
    }
    let deadline = tokio::time::Instant::now() + core.device_timeout;
    loop {
        if let Some(map) = core.multipath.map(wwid) {
            let members = core.multipath.paths_of(&map);
            if paths.iter().all(|p| members.contains(&p.name)) && core.multipath.node_ready(&map) {
                tracing::info!(wwid, map = %map.name, paths = ?members, "multipath map ready");
                return Ok(map);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::deadline_exceeded(format!(
                "the multipath map of WWID {wwid} with paths {:?} did not appear within {:?} (is multipathd running?)",
                paths.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                core.device_timeout
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
