//! Leak accounting: after a scenario no LV, backstore, target, ACL, iSCSI session, iscsiadm
//! node record, read-only device-mapper view (`carve-ro-*`), dm-multipath map (`dm/uuid`
//! `mpath-*`, what `dmsetup ls --target multipath` lists), WWID registered in multipath's wwids
//! file or mount of ours is left.

use crate::{lab::Lab, run};
use std::path::Path;

/// Everything of ours still present on the machine, one line each.
pub fn leaks(lab: &Lab, scratch: Option<&Path>) -> Vec<String> {
    let mut found = Vec::new();
    let lvs = run("lvs", &["--noheadings", "-o", "lv_name", &lab.vg]);
    for lv in String::from_utf8_lossy(&lvs.stdout).split_whitespace() {
        if lv.starts_with("csi-") || lv.starts_with("snap-") {
            found.push(format!("logical volume {}/{lv}", lab.vg));
        }
    }
    let configfs = Path::new("/sys/kernel/config/target");
    for entry in read_dir_names(&configfs.join("iscsi")) {
        if entry.starts_with("iqn.") || entry.starts_with("eui.") || entry.starts_with("naa.") {
            found.push(format!("iSCSI target {entry}"));
        }
    }
    // core/ holds one directory per HBA (iblock_N, ...) and alua/, LIO's own ALUA settings.
    for hba in read_dir_names(&configfs.join("core"))
        .into_iter()
        .filter(|h| h != "alua")
    {
        for object in read_dir_names(&configfs.join("core").join(&hba)) {
            if object != "hba_info" && object != "hba_mode" {
                found.push(format!("backstore core/{hba}/{object}"));
            }
        }
    }
    for session in read_dir_names(Path::new("/sys/class/iscsi_session")) {
        let target = std::fs::read_to_string(
            Path::new("/sys/class/iscsi_session")
                .join(&session)
                .join("targetname"),
        )
        .unwrap_or_default();
        found.push(format!("iSCSI session {session} to {}", target.trim()));
    }
    for dm in read_dir_names(Path::new("/sys/class/block"))
        .into_iter()
        .filter(|d| d.starts_with("dm-"))
    {
        let name =
            std::fs::read_to_string(format!("/sys/class/block/{dm}/dm/name")).unwrap_or_default();
        if name.starts_with("carve-ro-") {
            found.push(format!("device-mapper view {} ({dm})", name.trim()));
        }
        let uuid =
            std::fs::read_to_string(format!("/sys/class/block/{dm}/dm/uuid")).unwrap_or_default();
        if uuid.starts_with("mpath-") {
            found.push(format!("dm-multipath map {} ({dm})", name.trim()));
        }
    }
    // multipath -a registers a WWID as `/<wwid>/`; multipath -w comments it out.
    let wwids = std::fs::read_to_string("/etc/multipath/wwids").unwrap_or_default();
    for line in wwids.lines().filter(|l| l.starts_with('/')) {
        found.push(format!("WWID registered in /etc/multipath/wwids: {line}"));
    }
    for record in read_dir_names(Path::new("/etc/iscsi/nodes")) {
        found.push(format!("iscsiadm node record {record}"));
    }
    if let Some(scratch) = scratch {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for line in mountinfo.lines() {
            if let Some(point) = line
                .split(' ')
                .nth(4)
                .filter(|p| p.starts_with(&*scratch.to_string_lossy()))
            {
                found.push(format!("mount at {point}"));
            }
        }
    }
    found
}

/// Panics listing every leak.
pub fn assert_no_leaks(lab: &Lab, scratch: Option<&Path>) {
    let found = leaks(lab, scratch);
    assert!(found.is_empty(), "left behind:\n  {}", found.join("\n  "));
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
