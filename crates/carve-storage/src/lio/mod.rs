//! LIO, the kernel iSCSI target: one [`Lio`] trait, two backends (`configfs`, `targetcli`),
//! the state model both read back from configfs, and the rtslib-compatible saveconfig file.
//!
//! Invariants: one target per volume (`<prefix>:<volume id>`, TPG 1), one block storage object
//! named after the LV with the volume's unit serial, LUN 0, the configured portals, demo mode
//! off, and one ACL per published initiator; every mutation is idempotent and completes a
//! partial state left by an interrupted earlier call; a mutation is only reported done once the
//! resulting state has been read back and verified ([`verify_export`], [`verify_acl`]).

pub mod acl_index;
pub mod configfs;
pub mod counted;
pub mod hba_index;
pub mod layout;
pub mod saveconfig;
pub mod saved;
pub mod saver;
pub mod state;
pub mod targetcli;

pub use state::{AclAuth, AclState, LioState, StorageObjectState, TargetState};

use csi_common::{Error, Result, command::BoxFuture, contract::Chap, ids::Iqn};
use std::{fmt, net::SocketAddr, path::PathBuf};

/// Runs `f`, configfs work (thousands of reads for a whole state), on tokio's blocking pool,
/// not on a runtime worker; both backends read LIO through it.
///
/// # Errors
/// `f`'s error, or INTERNAL if the task panicked.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("configfs task failed: {e}")))?
}

/// The iSCSI session parameters every Carve target offers (`tpgt_1/param/`), negotiated with
/// open-iscsi's defaults (which already ask for these). LIO's own defaults (`InitialR2T=Yes`,
/// 8 KiB `MaxRecvDataSegmentLength`, 64 KiB/256 KiB bursts) make every write wait for an R2T
/// round trip and cut it into 8 KiB PDUs; docs/benchmarks.md measures what these change.
pub const SESSION_PARAMETERS: &[(&str, &str)] = &[
    ("InitialR2T", "No"),
    ("ImmediateData", "Yes"),
    ("MaxRecvDataSegmentLength", "262144"),
    ("FirstBurstLength", "262144"),
    ("MaxBurstLength", "1048576"),
];

/// Everything needed to export one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// The target IQN.
    pub target: Iqn,
    /// The storage object name (the LV name).
    pub storage_object: String,
    /// The LV's device path, `/dev/<vg>/<lv>`.
    pub device: PathBuf,
    /// The unit serial (VPD 0x80) the LUN reports.
    pub serial: String,
    /// Portals the target listens on.
    pub portals: Vec<SocketAddr>,
    /// Thin LV: advertise UNMAP (`emulate_tpu=1`) so the initiator can give space back.
    pub thin: bool,
}

/// One initiator's access to a target's LUN 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclSpec {
    /// The initiator IQN (the node id).
    pub initiator: Iqn,
    /// Write-protect the mapped LUN.
    pub readonly: bool,
    /// CHAP credentials the initiator (and, mutual, the target) must present.
    pub chap: Option<Chap>,
}

/// Configures LIO. Implementations must be safe to call again after any failure.
pub trait Lio: Send + Sync + fmt::Debug {
    /// The current LIO state (block storage objects and iSCSI targets).
    fn state(&self) -> BoxFuture<'_, Result<LioState>>;
    /// The part of the state one volume's export consists of: its storage object and its target
    /// (see [`state::read_volume_state`]); independent of how many other exports exist.
    fn volume_state<'a>(
        &'a self,
        target: &'a Iqn,
        storage_object: &'a str,
    ) -> BoxFuture<'a, Result<LioState>>;
    /// The IQNs of the iSCSI targets, sorted (see [`state::target_names`]): one directory
    /// listing, whatever the number of targets.
    fn target_names(&self) -> BoxFuture<'_, Result<Vec<String>>>;
    /// The targets whose IQN starts with `prefix` that have an ACL for `initiator` (what the
    /// attach limit counts). The default reads the whole state; a backend may answer cheaper.
    fn targets_with_acl<'a>(
        &'a self,
        prefix: &'a str,
        initiator: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            Ok(self
                .state()
                .await?
                .targets
                .into_iter()
                .filter(|t| t.iqn.starts_with(prefix))
                .filter(|t| t.acls.iter().any(|a| a.initiator == initiator))
                .map(|t| t.iqn)
                .collect())
        })
    }
    /// Drops whatever the backend caches of LIO's objects (the configfs backend's HBA index),
    /// so that changes made behind the controller's back are seen; runs with the ledger's
    /// resync (SIGHUP, `--lvm-resync-interval`).
    fn resync(&self) {}
    /// Creates or completes the export described by `spec`.
    fn ensure_export<'a>(&'a self, spec: &'a ExportSpec) -> BoxFuture<'a, Result<()>>;
    /// Removes the target (ACLs and all) and the storage object; `Ok(false)` if neither existed.
    fn remove_export<'a>(
        &'a self,
        target: &'a Iqn,
        storage_object: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Creates or updates one initiator's ACL on an existing export.
    fn ensure_acl<'a>(&'a self, target: &'a Iqn, acl: &'a AclSpec) -> BoxFuture<'a, Result<()>>;
    /// Removes one initiator's ACL (which ends its sessions); `Ok(false)` if it did not exist.
    fn remove_acl<'a>(&'a self, target: &'a Iqn, initiator: &'a Iqn)
    -> BoxFuture<'a, Result<bool>>;
}

/// Checks that `state` holds the complete export `spec` describes.
pub fn verify_export(state: &LioState, spec: &ExportSpec) -> Result<()> {
    let fail = |what: String| {
        Err(Error::internal(format!(
            "export of {} is incomplete: {what}",
            spec.storage_object
        )))
    };
    let Some(object) = state.storage_object(&spec.storage_object) else {
        return fail("no storage object".into());
    };
    let device = spec.device.display().to_string();
    if object.device.as_deref() != Some(device.as_str()) {
        return fail(format!(
            "storage object is on {:?}, not {device}",
            object.device
        ));
    }
    if !object.enabled {
        return fail("storage object not enabled".into());
    }
    if object.serial.as_deref() != Some(spec.serial.as_str()) {
        return fail(format!("unit serial is {:?}", object.serial));
    }
    if spec.thin && !object.emulate_tpu {
        return fail("emulate_tpu is off on a thin LV".into());
    }
    let Some(target) = state.target(spec.target.as_str()) else {
        return fail(format!("no target {}", spec.target));
    };
    if target.lun0_object.as_deref() != Some(spec.storage_object.as_str()) {
        return fail(format!("LUN 0 maps {:?}", target.lun0_object));
    }
    let mut want: Vec<String> = spec.portals.iter().map(ToString::to_string).collect();
    let mut have = target.portals.clone();
    want.sort();
    have.sort();
    if want != have {
        return fail(format!("portals are {have:?}, want {want:?}"));
    }
    if target.generate_node_acls {
        return fail("demo mode (generate_node_acls) is on".into());
    }
    if let Some((name, want)) = target.parameters_missing().next() {
        return fail(format!("session parameter {name} is not {want}"));
    }
    if !target.enabled {
        return fail("target portal group not enabled".into());
    }
    Ok(())
}

/// Checks that `state` holds the ACL `acl` on `target`.
pub fn verify_acl(state: &LioState, target: &Iqn, acl: &AclSpec) -> Result<()> {
    let fail = |what: &str| {
        Err(Error::internal(format!(
            "ACL for {} on {target} is incomplete: {what}",
            acl.initiator
        )))
    };
    let Some(found) = state.target(target.as_str()).and_then(|t| {
        t.acls
            .iter()
            .find(|a| a.initiator == acl.initiator.as_str())
    }) else {
        return fail("missing");
    };
    if !found.mapped_lun0 {
        return fail("LUN 0 not mapped");
    }
    if found.write_protect != acl.readonly {
        return fail("write_protect differs");
    }
    let user = acl.chap.as_ref().map(|c| c.username.as_str());
    if acl.chap.is_some() && found.auth.userid.as_deref() != user {
        return fail("CHAP user differs");
    }
    if acl.chap.is_some()
        && !state
            .target(target.as_str())
            .is_some_and(|t| t.authentication)
    {
        return fail("CHAP authentication not enforced on the target");
    }
    Ok(())
}
