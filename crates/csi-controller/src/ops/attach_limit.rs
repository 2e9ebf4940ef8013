//! The attach limit: at most `max` volumes published to one node; ControllerPublishVolume
//! answers RESOURCE_EXHAUSTED for one more (spec.md, ControllerPublishVolume Errors, "Max
//! volumes attached").
//!
//! The CO passes no limit to the controller, so the controller has its own flag
//! (`--max-volumes-per-node`, default [`DEFAULT_MAX_VOLUMES_PER_NODE`], the same default as the
//! node's `--max-volumes`, which NodeGetInfo reports so the scheduler counts CSINode allocatable).
//! Kubernetes enforces the node's figure before scheduling; this check is the storage side's own
//! guard for any CO, and for a node plugin configured with a larger figure.
//!
//! Invariants: a volume counts against a node while it has an ACL for the node's initiator or a
//! publication tag naming it (the set the single-node check reads, so an interrupted publish
//! counts too); a publication the node already holds is never refused (idempotent repeats stay
//! OK at the limit); the count and the publication tag that makes the new volume count happen
//! under one lock per node, so concurrent publishes to one node cannot overshoot; `0` means no
//! limit and reads nothing.

use super::{Ctx, volume};
use csi_common::{
    Error, Result,
    ids::{NodeId, VolumeId},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio::sync::OwnedMutexGuard;

pub use csi_common::contract::DEFAULT_MAX_VOLUMES_PER_NODE;

/// The limit and the per-node locks that make count-then-record atomic.
#[derive(Debug, Clone, Default)]
pub struct AttachLimit {
    max: u32,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl AttachLimit {
    /// At most `max` volumes per node (`0`: no limit).
    pub fn new(max: u32) -> Self {
        Self {
            max,
            locks: Arc::default(),
        }
    }

    /// The limit (`0`: none).
    pub fn max(&self) -> u32 {
        self.max
    }
}

/// Held from the count until the new publication is recorded; dropping it lets the next
/// publish to the same node count.
#[derive(Debug)]
pub struct Reserved {
    _node_lock: Option<OwnedMutexGuard<()>>,
}

/// Reserves room on `node` for `volume`, which the node does not hold yet: waits for the node's
/// lock, counts the other volumes attached to it, and refuses with `ResourceExhausted` when
/// they already reach the limit.
pub async fn reserve(ctx: &Ctx, node: &NodeId, volume: &VolumeId) -> Result<Reserved> {
    let limit = &ctx.attach_limit;
    if limit.max == 0 {
        return Ok(Reserved { _node_lock: None });
    }
    let lock = {
        let mut locks = limit
            .locks
            .lock()
            .map_err(|_| Error::internal("attach-limit lock poisoned"))?;
        Arc::clone(locks.entry(node.to_string()).or_default())
    };
    let guard = lock.lock_owned().await;
    let attached = attached_to(ctx, node, volume).await?;
    if attached >= limit.max as usize {
        return Err(Error::resource_exhausted(format!(
            "node {node} already has {attached} volumes published, the most allowed \
             (--max-volumes-per-node={}); unpublish one first",
            limit.max
        )));
    }
    Ok(Reserved {
        _node_lock: Some(guard),
    })
}

/// How many volumes other than `except` are attached (ACL or publication tag) to `node`.
async fn attached_to(ctx: &Ctx, node: &NodeId, except: &VolumeId) -> Result<usize> {
    let volumes = volume::list(ctx).await?;
    let lio = ctx.lio.state().await?;
    Ok(volumes
        .iter()
        .filter(|v| &v.id != except)
        .filter(|v| {
            let target = v.target_iqn(&ctx.settings.iqn_prefix);
            v.attached_nodes(lio.target(target.as_str()))
                .contains(node.as_str())
        })
        .count())
}
