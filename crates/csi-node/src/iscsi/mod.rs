//! The iSCSI initiator: node records, login, logout and sessions, behind [`Initiator`].
//!
//! Invariants: no SendTargets discovery (a node record is created for the one target); manual
//! startup; CHAP secrets are written into the node record file, never passed in argv;
//! "already logged in" (exit 15) and "no session / no record" (exit 21) are outcomes, not
//! errors; an authorization failure (exit 24) is PermissionDenied-like and reported as
//! FailedPrecondition; iscsid unreachable (exit 20) is Unavailable; only sessions made through
//! the plugin's own iscsiadm iface count as its sessions.

pub mod iscsiadm;
pub mod record;
pub mod sysfs;

use csi_common::{Result, command::BoxFuture, contract::Chap, ids::Iqn};
use std::{fmt, net::SocketAddr};

pub use sysfs::Session;

/// The node record of one path to a target, as [`Initiator::prepare`] writes it.
#[derive(Debug, Clone, Copy)]
pub struct RecordSpec<'a> {
    /// The target.
    pub target: &'a Iqn,
    /// The portal of this path.
    pub portal: SocketAddr,
    /// CHAP credentials, if the volume has them.
    pub chap: Option<&'a Chap>,
    /// The session's `replacement_timeout` in seconds, when given (a path of a multipath map
    /// fails over fast).
    pub replacement_timeout: Option<u32>,
}

/// What a login did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// A new session was created.
    LoggedIn,
    /// A session already existed.
    AlreadyLoggedIn,
}

/// What a removal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Something was removed.
    Removed,
    /// There was nothing to remove.
    NotFound,
}

/// The initiator operations the node needs.
pub trait Initiator: Send + Sync + fmt::Debug {
    /// Creates (or recreates) the node record `spec` describes, manual startup, with its CHAP
    /// credentials written without argv.
    fn prepare<'a>(&'a self, spec: RecordSpec<'a>) -> BoxFuture<'a, Result<()>>;
    /// Logs in to `target` at `portal`.
    fn login<'a>(&'a self, target: &'a Iqn, portal: SocketAddr) -> BoxFuture<'a, Result<Login>>;
    /// Logs out of `target` at `portal`.
    fn logout<'a>(&'a self, target: &'a Iqn, portal: SocketAddr) -> BoxFuture<'a, Result<Removal>>;
    /// Deletes the node record of `target` at `portal`.
    fn delete_record<'a>(
        &'a self,
        target: &'a Iqn,
        portal: SocketAddr,
    ) -> BoxFuture<'a, Result<Removal>>;
    /// Current sessions through this initiator's iface (from sysfs).
    fn sessions(&self) -> Vec<Session>;
    /// `(target, portal)` of every node record of this initiator's iface.
    fn records(&self) -> Vec<(String, SocketAddr)>;
    /// Scans session `sid` for LUNs (see [`sysfs::scan_session`]); answers the SCSI host
    /// scanned.
    fn rescan_session(&self, sid: u32) -> BoxFuture<'_, Result<String>>;
}

/// The session of `target` at `portal`, if any.
pub fn find_session<'a>(
    sessions: &'a [Session],
    target: &Iqn,
    portal: SocketAddr,
) -> Option<&'a Session> {
    sessions
        .iter()
        .find(|s| s.target == target.as_str() && s.portal.is_none_or(|p| p == portal))
}
