//! The initiator side as the kernel and iscsiadm show it: sessions and their disks (sysfs),
//! dm-multipath maps and multipathd's paths, iscsiadm node records, and logins made by hand
//! (as another initiator, an operator or a crash would leave them).
//!
//! Everything here reads the machine or runs iscsiadm directly; nothing goes through the
//! plugins.

use crate::{Lab, run, run_ok};
use std::path::{Path, PathBuf};

/// One iSCSI session, from `/sys/class/iscsi_session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's sysfs name (`sessionN`).
    pub sid: String,
    /// The connection's `persistent_address` (no brackets for IPv6).
    pub address: String,
    /// Kernel names of the block devices under the session.
    pub disks: Vec<String>,
}

/// Every session to `iqn`.
pub fn sessions_to(iqn: &str) -> Vec<Session> {
    let root = Path::new("/sys/class/iscsi_session");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let sid = entry.file_name().to_string_lossy().into_owned();
        let target = std::fs::read_to_string(entry.path().join("targetname")).unwrap_or_default();
        if target.trim() != iqn {
            continue;
        }
        let n = sid.trim_start_matches("session");
        let address = std::fs::read_to_string(format!(
            "/sys/class/iscsi_connection/connection{n}:0/persistent_address"
        ))
        .unwrap_or_default()
        .trim()
        .to_string();
        let disks = session_disks(&entry.path().join("device"));
        out.push(Session {
            sid,
            address,
            disks,
        });
    }
    out
}

/// Block device names under a session's `device/target*/H:C:T:L/block/`.
fn session_disks(device: &Path) -> Vec<String> {
    let names = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let mut out = Vec::new();
    for target in names(device) {
        if !target
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("target"))
        {
            continue;
        }
        for lun in names(&target) {
            for block in names(&lun.join("block")) {
                out.push(block.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// The kernel state (`LOGGED_IN`, `FAILED`, ...) of the session to `iqn` through `address`.
pub fn session_state(iqn: &str, address: &str) -> Option<String> {
    let session = sessions_to(iqn)
        .into_iter()
        .find(|s| s.address == address)?;
    std::fs::read_to_string(format!("/sys/class/iscsi_session/{}/state", session.sid))
        .ok()
        .map(|s| s.trim().to_string())
}

/// How many iSCSI sessions the kernel has, to any target.
pub fn session_count() -> usize {
    std::fs::read_dir("/sys/class/iscsi_session").map_or(0, std::iter::Iterator::count)
}

/// Whether iscsiadm has a node record for `iqn`.
pub fn has_record(iqn: &str) -> bool {
    Path::new("/etc/iscsi/nodes").join(iqn).exists()
}

/// `iscsiadm -m node -T <iqn> -p <lab portal> EXTRA` through the default iface (the plugin's).
pub fn by_hand(lab: &Lab, iqn: &str, extra: &[&str]) -> String {
    let mut argv = vec!["-m", "node", "-T", iqn, "-p", &lab.portal];
    argv.extend_from_slice(extra);
    run_ok("iscsiadm", &argv)
}

/// Logs in to `iqn` by hand (default iface) and waits for its disk; answers the disk's name.
pub fn login_by_hand(lab: &Lab, iqn: &str) -> String {
    by_hand(lab, iqn, &["-o", "new"]);
    by_hand(lab, iqn, &["--login"]);
    let disk = (0..100)
        .find_map(|_| {
            let found = sessions_to(iqn)
                .first()
                .and_then(|s| s.disks.first().cloned());
            if found.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            found
        })
        .expect("the hand-made session's disk");
    run_ok("udevadm", &["settle"]);
    disk
}

/// Logs in to `target` by hand as `iface` (`default`: this node's initiator name), with CHAP
/// `(user, password)` if given; answers iscsiadm's exit code (24: login refused).
pub fn login_as(lab: &Lab, target: &str, iface: &str, chap: Option<(&str, &str)>) -> i32 {
    let node = ["-m", "node", "-T", target, "-p", &lab.portal, "-I", iface];
    run_ok(
        "iscsiadm",
        &[
            "-m",
            "node",
            "-o",
            "new",
            "-T",
            target,
            "-p",
            &lab.portal,
            "-I",
            iface,
        ],
    );
    if let Some((user, password)) = chap {
        for (name, value) in [
            ("node.session.auth.authmethod", "CHAP"),
            ("node.session.auth.username", user),
            ("node.session.auth.password", password),
        ] {
            let update = ["-o", "update", "-n", name, "-v", value];
            run_ok("iscsiadm", &[&node[..], &update].concat());
        }
    }
    let out = run("iscsiadm", &[&node[..], &["--login"]].concat());
    out.status.code().unwrap_or(-1)
}

/// Logs out of `target` and deletes its node records (errors ignored), then lets udev settle.
pub fn logout_and_forget(lab: &Lab, target: &str) {
    let node = ["-m", "node", "-T", target, "-p", &lab.portal];
    let _ = run("iscsiadm", &[&node[..], &["--logout"]].concat());
    let _ = run("iscsiadm", &[&node[..], &["-o", "delete"]].concat());
    let _ = run("udevadm", &["settle"]);
}

/// Whether `iscsiadm -m session` shows any session logged in.
pub fn any_logged_in() -> bool {
    let out = run("iscsiadm", &["-m", "session", "-P", "1"]);
    String::from_utf8_lossy(&out.stdout).contains("iSCSI Session State: LOGGED_IN")
}

/// iscsid.conf with lines added for a scenario; the original is written back on drop, pass or
/// fail.
#[derive(Debug)]
pub struct IscsidConf(String);

impl IscsidConf {
    /// Where open-iscsi reads it.
    pub const PATH: &str = "/etc/iscsi/iscsid.conf";

    /// Appends `line` to iscsid.conf (new node records take their defaults from it).
    pub fn append(line: &str) -> Self {
        let original = std::fs::read_to_string(Self::PATH).expect("iscsid.conf");
        let restore = Self(original.clone());
        std::fs::write(Self::PATH, format!("{original}\n{line}\n")).expect("write iscsid.conf");
        restore
    }
}

impl Drop for IscsidConf {
    fn drop(&mut self) {
        std::fs::write(Self::PATH, &self.0).expect("restore iscsid.conf");
    }
}

/// One dm-multipath map, from `/sys/class/block/dm-*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpathMap {
    /// Its kernel name (`dm-N`).
    pub dm: String,
    /// Its WWID (the `dm/uuid` after `mpath-`).
    pub wwid: String,
    /// Its path disks (`slaves/`), sorted.
    pub paths: Vec<String>,
}

/// Every dm-multipath map.
pub fn mpath_maps() -> Vec<MpathMap> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/class/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dm = entry.file_name().to_string_lossy().into_owned();
        let uuid = std::fs::read_to_string(entry.path().join("dm/uuid")).unwrap_or_default();
        let Some(wwid) = uuid.trim().strip_prefix("mpath-") else {
            continue;
        };
        let mut paths: Vec<String> = std::fs::read_dir(entry.path().join("slaves"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        paths.sort();
        out.push(MpathMap {
            dm,
            wwid: wwid.to_string(),
            paths,
        });
    }
    out
}

/// multipathd's view of every path, one line each: `"<disk> <dm state> <checker state>"`.
pub fn mpath_paths() -> String {
    run_ok(
        "multipathd",
        &["show", "paths", "raw", "format", "%d %t %T"],
    )
}
