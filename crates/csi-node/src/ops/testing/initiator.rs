//! The fake iSCSI initiator: sessions in memory, each attaching a fixed disk per portal.

use crate::iscsi::{Initiator, Login, RecordSpec, Removal, Session};
use csi_common::{Error, Result, command::BoxFuture, ids::Iqn};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

/// The disk a fake session to the first portal (`127.0.0.1:3260`) attaches.
pub const DISK: &str = "sdb";
/// The disk a fake session to any other portal attaches.
pub const DISK2: &str = "sdc";

/// The disk a fake session through `portal` attaches.
pub fn disk_for(portal: SocketAddr) -> &'static str {
    if portal == "127.0.0.1:3260".parse().unwrap() {
        DISK
    } else {
        DISK2
    }
}

fn default_portal() -> SocketAddr {
    "127.0.0.1:3260".parse().unwrap()
}

/// An initiator with sessions in memory.
#[derive(Debug, Default)]
pub struct FakeInitiator {
    /// Target IQNs with a node record at `127.0.0.1:3260`, and whether CHAP was set.
    pub records: Mutex<Vec<(String, bool)>>,
    /// Node records at other portals.
    pub other_records: Mutex<Vec<(String, SocketAddr)>>,
    /// The replacement timeout each prepare wrote (`None`: the record's default).
    pub replacement_timeouts: Mutex<Vec<Option<u32>>>,
    /// Portals whose login fails (unreachable).
    pub down: Mutex<Vec<SocketAddr>>,
    /// Live sessions.
    pub sessions: Mutex<Vec<Session>>,
    /// How many times the sessions were read.
    pub session_reads: std::sync::atomic::AtomicUsize,
    /// What the next read of the sessions answers instead of `sessions` (a reading taken just
    /// before the sessions changed).
    pub stale_reading: Mutex<Option<Vec<Session>>>,
    /// Error the next login returns.
    pub login_error: Mutex<Option<Error>>,
    /// Every call, in order.
    pub calls: Mutex<Vec<String>>,
    /// Shared with [`FakeDevices::lun_hidden`]: a login attaches no disk while set, and a
    /// session rescan clears it (manual scan mode, or a disk deleted behind the session).
    pub lun_hidden: Arc<Mutex<bool>>,
    /// A rescan finds nothing (the LUN is really gone from the target).
    pub rescan_blind: Mutex<bool>,
}

impl FakeInitiator {
    fn call(&self, c: String) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Initiator for FakeInitiator {
    fn prepare<'a>(&'a self, spec: RecordSpec<'a>) -> BoxFuture<'a, Result<()>> {
        let (target, portal) = (spec.target, spec.portal);
        self.replacement_timeouts
            .lock()
            .unwrap()
            .push(spec.replacement_timeout);
        if portal != default_portal() {
            self.call(format!("prepare {target} at {portal}"));
            let mut others = self.other_records.lock().unwrap();
            others.retain(|(t, p)| !(t == target.as_str() && *p == portal));
            others.push((target.to_string(), portal));
            return Box::pin(std::future::ready(Ok(())));
        }
        self.call(format!("prepare {target}"));
        let mut records = self.records.lock().unwrap();
        records.retain(|(t, _)| t != target.as_str());
        records.push((target.to_string(), spec.chap.is_some()));
        Box::pin(std::future::ready(Ok(())))
    }

    fn login<'a>(&'a self, target: &'a Iqn, portal: SocketAddr) -> BoxFuture<'a, Result<Login>> {
        if portal == default_portal() {
            self.call(format!("login {target}"));
        } else {
            self.call(format!("login {target} at {portal}"));
        }
        if let Some(e) = self.login_error.lock().unwrap().take() {
            return Box::pin(std::future::ready(Err(e)));
        }
        if self.down.lock().unwrap().contains(&portal) {
            return Box::pin(std::future::ready(Err(Error::internal(format!(
                "iscsi login: connection to {portal} refused"
            )))));
        }
        let mut sessions = self.sessions.lock().unwrap();
        let result = if sessions
            .iter()
            .any(|s| s.target == target.as_str() && s.portal.is_none_or(|p| p == portal))
        {
            Login::AlreadyLoggedIn
        } else {
            let sid = sessions.iter().map(|s| s.sid).max().unwrap_or(0) + 1;
            sessions.push(Session {
                sid,
                target: target.to_string(),
                iface: "default".into(),
                state: "LOGGED_IN".into(),
                portal: Some(portal),
                disks: if *self.lun_hidden.lock().unwrap() {
                    vec![]
                } else {
                    vec![(0, disk_for(portal).into())]
                },
            });
            Login::LoggedIn
        };
        Box::pin(std::future::ready(Ok(result)))
    }

    fn logout<'a>(&'a self, target: &'a Iqn, portal: SocketAddr) -> BoxFuture<'a, Result<Removal>> {
        if portal == default_portal() {
            self.call(format!("logout {target}"));
        } else {
            self.call(format!("logout {target} at {portal}"));
        }
        let mut sessions = self.sessions.lock().unwrap();
        let before = sessions.len();
        sessions.retain(|s| !(s.target == target.as_str() && s.portal.is_none_or(|p| p == portal)));
        let r = if sessions.len() < before {
            Removal::Removed
        } else {
            Removal::NotFound
        };
        Box::pin(std::future::ready(Ok(r)))
    }

    fn delete_record<'a>(
        &'a self,
        target: &'a Iqn,
        portal: SocketAddr,
    ) -> BoxFuture<'a, Result<Removal>> {
        if portal != default_portal() {
            self.call(format!("delete_record {target} at {portal}"));
            let mut others = self.other_records.lock().unwrap();
            let before = others.len();
            others.retain(|(t, p)| !(t == target.as_str() && *p == portal));
            let r = if others.len() < before {
                Removal::Removed
            } else {
                Removal::NotFound
            };
            return Box::pin(std::future::ready(Ok(r)));
        }
        self.call(format!("delete_record {target}"));
        let mut records = self.records.lock().unwrap();
        let before = records.len();
        records.retain(|(t, _)| t != target.as_str());
        let r = if records.len() < before {
            Removal::Removed
        } else {
            Removal::NotFound
        };
        Box::pin(std::future::ready(Ok(r)))
    }

    fn sessions(&self) -> Vec<Session> {
        self.session_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(stale) = self.stale_reading.lock().unwrap().take() {
            return stale;
        }
        self.sessions.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<(String, SocketAddr)> {
        let records = self.records.lock().unwrap();
        let mut all: Vec<(String, SocketAddr)> = records
            .iter()
            .map(|(t, _)| (t.clone(), default_portal()))
            .collect();
        all.extend(self.other_records.lock().unwrap().iter().cloned());
        all
    }

    fn rescan_session(&self, sid: u32) -> BoxFuture<'_, Result<String>> {
        self.call(format!("rescan session {sid}"));
        if *self.rescan_blind.lock().unwrap() {
            return Box::pin(std::future::ready(Ok(format!("host{sid}"))));
        }
        *self.lun_hidden.lock().unwrap() = false;
        for s in self.sessions.lock().unwrap().iter_mut() {
            if s.sid == sid && s.disks.is_empty() {
                let disk = s.portal.map_or(DISK, disk_for);
                s.disks.push((0, disk.into()));
            }
        }
        Box::pin(std::future::ready(Ok(format!("host{sid}"))))
    }
}
