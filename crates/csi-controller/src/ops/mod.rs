//! The controller's operations, one file per RPC, over the [`Lvm`] and [`Lio`] traits.
//!
//! Invariants: LVM (LV + tags) and LIO are the whole durable state; LVM is read through the
//! controller's in-memory ledger of it ([`crate::lvm::ledger`], kept by the only writer), LIO
//! on every call; nothing
//! here knows gRPC: operations take typed arguments, return domain results
//! (`Created`/`AlreadyExisted`, `Deleted`/`NotFound`) and domain errors; every mutation is
//! idempotent so a retry completes an interrupted call.

pub mod attach_limit;
pub mod capability;
pub mod capacity;
pub mod condition;
pub mod create_from_source;
pub mod create_volume;
pub mod delete_volume;
pub mod expand_volume;
pub mod get_capacity;
pub mod list_volumes;
pub mod params;
pub mod publish;
pub mod request;
pub mod snapshot;
pub mod topology;
pub mod unpublish;
pub mod validate;
pub mod volume;

/// The fake storage host the operations' tests (and, through the `testing` feature, other
/// crates' tests) run against.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
// The LVM layer's ledger and space admission under these operations (carve-storage holds the
// ledger's own unit tests; these need the fake host).
#[cfg(test)]
#[path = "ledger_tests.rs"]
mod ledger_tests;
#[cfg(test)]
#[path = "space_tests.rs"]
mod space_tests;

use crate::{
    lio::{Lio, saver::SaveHandle},
    lvm::Lvm,
    wiper::WipeHandle,
};
use csi_common::{Error, Result, ids::Iqn, topology::Segments};
use std::{net::SocketAddr, sync::Arc};

/// What the operations need from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Portals every target listens on (empty: CreateVolume refuses).
    pub portals: Vec<SocketAddr>,
    /// Prefix of target IQNs.
    pub iqn_prefix: Iqn,
    /// The thin pool for `thin=true` volumes.
    pub thin_pool: Option<String>,
    /// Capacity of a volume created without `required_bytes` or `limit_bytes`.
    pub default_capacity: u64,
    /// Thin volumes may promise this many times the pool's size in total.
    pub thin_overprovision: f64,
    /// Serve thin volumes from a pool that does not zero new chunks (tenants may read each
    /// other's deleted data; `--allow-unzeroed-thin-pool`).
    pub allow_unzeroed_thin_pool: bool,
    /// Topologies every volume of this host is reachable from (empty: no topology; see
    /// [`topology`]).
    pub accessible_topology: Vec<Segments>,
}

/// The backends and settings every operation runs against.
#[derive(Debug, Clone)]
pub struct Ctx {
    lvm: Option<Arc<dyn Lvm>>,
    /// The LIO backend.
    pub lio: Arc<dyn Lio>,
    /// Settings.
    pub settings: Settings,
    saver: Option<SaveHandle>,
    /// The attach limit per node (none unless [`Ctx::with_attach_limit`]).
    pub attach_limit: attach_limit::AttachLimit,
    wiper: Option<WipeHandle>,
}

impl Ctx {
    /// A context; `lvm` is `None` when no volume group is configured.
    pub fn new(
        lvm: Option<Arc<dyn Lvm>>,
        lio: Arc<dyn Lio>,
        settings: Settings,
        saver: Option<SaveHandle>,
    ) -> Self {
        Self {
            lvm,
            lio,
            settings,
            saver,
            attach_limit: attach_limit::AttachLimit::default(),
            wiper: None,
        }
    }

    /// The same context, waking `wiper` when a linear volume is quarantined for wiping.
    pub fn with_wiper(mut self, wiper: WipeHandle) -> Self {
        self.wiper = Some(wiper);
        self
    }

    /// Returns once every LIO change recorded so far is in saveconfig.json (see
    /// [`SaveHandle::sync`]): a revoked ACL must not be restorable from the file.
    pub async fn lio_saved(&self) -> Result<()> {
        match &self.saver {
            Some(saver) => saver
                .sync()
                .await
                .map_err(|e| e.context("save the LIO configuration")),
            None => Ok(()),
        }
    }

    /// Records that an LV was quarantined, so the wiper runs a pass.
    pub fn wipe_requested(&self) {
        if let Some(wiper) = &self.wiper {
            wiper.request();
        }
    }

    /// This context with at most `max` volumes published per node (`0`: no limit).
    #[must_use]
    pub fn with_attach_limit(mut self, max: u32) -> Self {
        self.attach_limit = attach_limit::AttachLimit::new(max);
        self
    }

    /// LVM, or `FailedPrecondition` when the controller runs without `--volume-group`.
    pub fn lvm(&self) -> Result<&Arc<dyn Lvm>> {
        self.lvm.as_ref().ok_or_else(|| {
            Error::failed_precondition(
                "no volume group configured: start csi-controller with --volume-group",
            )
        })
    }

    /// The saveconfig writer, if this context has one.
    pub fn saver(&self) -> Option<&SaveHandle> {
        self.saver.as_ref()
    }
}
