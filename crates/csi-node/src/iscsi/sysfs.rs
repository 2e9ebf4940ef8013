//! iSCSI sessions as the kernel sees them, read from sysfs (no iscsiadm output parsing).
//!
//! Layout (captured in the lab guest, tests/fixtures/node/sysfs-session-layout.txt):
//! `class/iscsi_session/sessionN/{targetname,ifacename,state}`,
//! `class/iscsi_session/sessionN/device/target*/H:C:T:L/block/sdX` and
//! `class/iscsi_connection/connectionN:0/{persistent_address,persistent_port}`.
//! Invariant: the root is a parameter (`/sys` in production), so tests run on a built tree; a
//! session that vanishes while being read is skipped, never half-reported.

use csi_common::{Error, Result};
use std::{
    io::Write,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

/// One logged-in (or recovering) session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id (N in sessionN).
    pub sid: u32,
    /// Target IQN.
    pub target: String,
    /// iscsiadm iface name.
    pub iface: String,
    /// Kernel session state, e.g. `LOGGED_IN`, `FAILED`, `FREE`.
    pub state: String,
    /// The portal of the session's first connection.
    pub portal: Option<SocketAddr>,
    /// `(lun, block device name)` of every disk attached through this session.
    pub disks: Vec<(u32, String)>,
}

impl Session {
    /// The block device name of `lun`, if attached.
    pub fn disk(&self, lun: u32) -> Option<&str> {
        self.disks
            .iter()
            .find(|(l, _)| *l == lun)
            .map(|(_, n)| n.as_str())
    }
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn disks(session_dir: &Path) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for target in sorted_entries(&session_dir.join("device")) {
        let is_target = target
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("target"));
        if !is_target {
            continue;
        }
        for lun_dir in sorted_entries(&target) {
            let name = lun_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let Some(lun) = name
                .as_deref()
                .and_then(|n| n.rsplit(':').next())
                .filter(|_| name.as_deref().is_some_and(|n| n.matches(':').count() == 3))
                .and_then(|l| l.parse().ok())
            else {
                continue;
            };
            for block in sorted_entries(&lun_dir.join("block")) {
                if let Some(dev) = block.file_name() {
                    out.push((lun, dev.to_string_lossy().into_owned()));
                }
            }
        }
    }
    out
}

fn portal(sys: &Path, sid: u32) -> Option<SocketAddr> {
    let conn = sys.join(format!("class/iscsi_connection/connection{sid}:0"));
    let ip: IpAddr = read_trim(&conn.join("persistent_address"))?.parse().ok()?;
    let port: u16 = read_trim(&conn.join("persistent_port"))?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Every iSCSI session under `sys` (normally `/sys`), ordered by session id.
pub fn sessions(sys: &Path) -> Vec<Session> {
    let mut out = Vec::new();
    for dir in sorted_entries(&sys.join("class/iscsi_session")) {
        let Some(sid) = dir
            .file_name()
            .and_then(|n| n.to_string_lossy().strip_prefix("session")?.parse().ok())
        else {
            continue;
        };
        let (Some(target), Some(iface), Some(state)) = (
            read_trim(&dir.join("targetname")),
            read_trim(&dir.join("ifacename")),
            read_trim(&dir.join("state")),
        ) else {
            continue; // vanished while reading
        };
        out.push(Session {
            sid,
            target,
            iface,
            state,
            portal: portal(sys, sid),
            disks: disks(&dir),
        });
    }
    out.sort_by_key(|s| s.sid);
    out
}

/// The SCSI host of session `sid` (`hostH`): the `hostH` directory its `device` link resolves
/// into (`/sys/devices/platform/hostH/sessionN`). iscsi_tcp creates one host per session.
pub fn session_host(sys: &Path, sid: u32) -> Option<String> {
    let device = sys.join(format!("class/iscsi_session/session{sid}/device"));
    let real = std::fs::canonicalize(device).ok()?;
    real.components()
        .filter_map(|c| c.as_os_str().to_str())
        .rfind(|c| {
            c.strip_prefix("host")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// Scans session `sid` for LUNs: writes `- - -` (every channel, target and LUN) to its SCSI
/// host's `scan` attribute, as open-iscsi's own post-login scan does. The kernel scans
/// synchronously (only this session's target: iscsi_user_scan) and udev then sees `add` events
/// for the disks found. Used when a session exists but its disk does not (a session logged in
/// with `node.session.scan = manual`, or a disk deleted behind the session's back).
pub fn scan_session(sys: &Path, sid: u32) -> Result<String> {
    let host = session_host(sys, sid).ok_or_else(|| {
        Error::unavailable(format!(
            "iSCSI session {sid} has no SCSI host in sysfs (the session is gone)"
        ))
    })?;
    let scan = sys.join("class/scsi_host").join(&host).join("scan");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&scan)
        .map_err(|e| Error::internal(format!("open {}: {e}", scan.display())))?;
    file.write_all(b"- - -")
        .map_err(|e| Error::internal(format!("write {}: {e}", scan.display())))?;
    Ok(host)
}

/// Test helper: builds the captured sysfs layout of one session under `sys`.
#[cfg(test)]
pub fn build_session(sys: &Path, sid: u32, target: &str, state: &str, disk: Option<&str>) {
    let s = sys.join(format!("class/iscsi_session/session{sid}"));
    std::fs::create_dir_all(&s).unwrap();
    std::fs::write(s.join("targetname"), format!("{target}\n")).unwrap();
    std::fs::write(s.join("ifacename"), "default\n").unwrap();
    std::fs::write(s.join("state"), format!("{state}\n")).unwrap();
    if let Some(disk) = disk {
        let h = sid - 1;
        std::fs::create_dir_all(s.join(format!("device/target{h}:0:0/{h}:0:0:0/block/{disk}")))
            .unwrap();
    }
    let c = sys.join(format!("class/iscsi_connection/connection{sid}:0"));
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("persistent_address"), "127.0.0.1\n").unwrap();
    std::fs::write(c.join("persistent_port"), "3260\n").unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_captured_layout() {
        let sys = tempfile::tempdir().unwrap();
        assert!(sessions(sys.path()).is_empty(), "no iscsi class at all");
        build_session(
            sys.path(),
            1,
            "iqn.2024-01.dev.carve:cap1",
            "LOGGED_IN",
            Some("sda"),
        );
        build_session(sys.path(), 2, "iqn.2024-01.dev.carve:cap2", "FAILED", None);
        // noise that must be ignored
        std::fs::create_dir_all(sys.path().join("class/iscsi_session/session1/device/power"))
            .unwrap();
        let found = sessions(sys.path());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].target, "iqn.2024-01.dev.carve:cap1");
        assert_eq!(found[0].state, "LOGGED_IN");
        assert_eq!(found[0].portal, Some("127.0.0.1:3260".parse().unwrap()));
        assert_eq!(found[0].disk(0), Some("sda"));
        assert_eq!(found[0].disk(1), None);
        assert_eq!(found[1].disks, vec![]);
        assert_eq!(found[1].state, "FAILED");
    }

    #[test]
    fn a_session_is_rescanned_through_its_own_scsi_host() {
        let sys = tempfile::tempdir().unwrap();
        let sys = sys.path();
        // The real shape: class/iscsi_session/session3/device -> devices/platform/host2/session3
        let session = sys.join("class/iscsi_session/session3");
        std::fs::create_dir_all(&session).unwrap();
        let real = sys.join("devices/platform/host2/session3");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(&real, session.join("device")).unwrap();
        assert_eq!(session_host(sys, 3).as_deref(), Some("host2"));
        let missing_scan = scan_session(sys, 3).unwrap_err();
        assert!(
            missing_scan.message().contains("scsi_host/host2/scan"),
            "{missing_scan}"
        );
        let host = sys.join("class/scsi_host/host2");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("scan"), "").unwrap();
        assert_eq!(scan_session(sys, 3).unwrap(), "host2");
        assert_eq!(std::fs::read_to_string(host.join("scan")).unwrap(), "- - -");
        let gone = scan_session(sys, 4).unwrap_err();
        assert_eq!(gone.kind(), csi_common::Kind::Unavailable);
    }
}
