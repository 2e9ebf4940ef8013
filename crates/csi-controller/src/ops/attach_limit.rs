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
//! Invariants: a volume counts against a node while its target has an ACL for the node's
//! initiator (the access the node really has; a publication interrupted before its ACL was made
//! gets it back from its tag at start, `reconcile`), read from LIO alone (on configfs from the
//! backend's index of ACLs, kept with every ACL change: no configfs work per publish), so a
//! publish costs no extra LVM process; a publication the node already holds is never refused
//! (idempotent repeats
//! stay OK at the limit); the count and the ACL that makes the new volume count happen under one
//! lock per node (the caller holds [`Reserved`] until its ACL exists), so concurrent publishes to
//! one node cannot overshoot; `0` means no limit and reads nothing.

use super::Ctx;
use csi_common::{
    Error, Result,
    ids::{Iqn, NodeId, VolumeId},
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

/// Held from the count until the new ACL exists; dropping it lets the next publish to the same
/// node count.
#[derive(Debug)]
pub struct Reserved {
    _node_lock: Option<OwnedMutexGuard<()>>,
}

/// Reserves room on `node` for `volume`, which the node does not hold yet: waits for the node's
/// lock, counts the other volumes attached to it, and refuses with `ResourceExhausted` when
/// they already reach the limit.
pub async fn reserve(ctx: &Ctx, node: &NodeId, volume: &VolumeId) -> Result<Reserved> {
    let target = ctx.settings.iqn_prefix.target_for(volume);
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
    let attached = attached_to(ctx, node, &target).await?;
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

/// How many Carve targets other than `except` have an ACL for `node`'s initiator: on configfs
/// from the backend's ACL index ([`crate::lio::Lio::targets_with_acl`]), no LVM process and no
/// read of the whole LIO state.
async fn attached_to(ctx: &Ctx, node: &NodeId, except: &Iqn) -> Result<usize> {
    let prefix = format!("{}:", ctx.settings.iqn_prefix);
    let targets = ctx.lio.targets_with_acl(&prefix, node.as_str()).await?;
    Ok(targets.iter().filter(|t| *t != except.as_str()).count())
}
