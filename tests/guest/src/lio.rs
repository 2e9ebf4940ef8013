//! The target side as LIO's configfs shows it: targets, their LUN's storage object and ACLs;
//! and what a storage-host reboot does to it (everything wiped, or restored from a saveconfig
//! file by the distribution's restore service).
//!
//! Everything here reads or writes configfs (or runs targetcli) directly; nothing goes through
//! the plugins.

use crate::run_ok;
use std::path::Path;

/// Where LIO's configfs tree is mounted.
pub const CONFIGFS: &str = "/sys/kernel/config/target";

/// Whether LIO has an ACL for `initiator` on `target`.
pub fn has_acl(target: &str, initiator: &str) -> bool {
    Path::new(CONFIGFS)
        .join("iscsi")
        .join(target)
        .join("tpgt_1/acls")
        .join(initiator)
        .exists()
}

/// What a storage-host reboot with the distribution's restore service does: LIO cleared, then
/// rebuilt from `file`.
pub fn restore_from(file: &Path) {
    run_ok("targetcli", &["clearconfig", "confirm=True"]);
    run_ok(
        "targetcli",
        &[
            "restoreconfig",
            &format!("savefile={}", file.display()),
            "clear_existing=true",
        ],
    );
}

/// What a storage-host reboot does to LIO: every target and storage object gone.
pub fn wipe() {
    let cfg = Path::new(CONFIGFS);
    let names = |p: &Path| -> Vec<String> {
        std::fs::read_dir(p)
            .map(|d| {
                d.filter_map(std::result::Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let rm_links = |p: &Path| {
        for n in names(p) {
            let _ = std::fs::remove_file(p.join(n));
        }
    };
    for target in names(&cfg.join("iscsi"))
        .iter()
        .filter(|n| n.starts_with("iqn."))
    {
        let tpg = cfg.join("iscsi").join(target).join("tpgt_1");
        let _ = std::fs::write(tpg.join("enable"), "0");
        for acl in names(&tpg.join("acls")) {
            rm_links(&tpg.join("acls").join(&acl).join("lun_0"));
            std::fs::remove_dir(tpg.join("acls").join(&acl).join("lun_0")).unwrap();
            std::fs::remove_dir(tpg.join("acls").join(&acl)).unwrap();
        }
        rm_links(&tpg.join("lun/lun_0"));
        std::fs::remove_dir(tpg.join("lun/lun_0")).unwrap();
        for np in names(&tpg.join("np")) {
            std::fs::remove_dir(tpg.join("np").join(np)).unwrap();
        }
        std::fs::remove_dir(&tpg).unwrap();
        std::fs::remove_dir(cfg.join("iscsi").join(target)).unwrap();
    }
    for hba in names(&cfg.join("core"))
        .iter()
        .filter(|n| n.starts_with("iblock_"))
    {
        for object in names(&cfg.join("core").join(hba)) {
            let path = cfg.join("core").join(hba).join(object);
            if path.is_dir() {
                std::fs::remove_dir(path).unwrap();
            }
        }
        std::fs::remove_dir(cfg.join("core").join(hba)).unwrap();
    }
}

/// One ACL: initiator, CHAP user, write protection.
pub type Acl = (String, String, String);

/// Per target: its storage object and its ACLs.
pub fn acls_of(targets: &[&str]) -> Vec<(String, String, Vec<Acl>)> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    targets
        .iter()
        .map(|target| {
            let tpg = Path::new(CONFIGFS)
                .join("iscsi")
                .join(target)
                .join("tpgt_1");
            let lun = std::fs::read_dir(tpg.join("lun/lun_0"))
                .into_iter()
                .flatten()
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|dest| dest.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            let mut acls: Vec<_> = std::fs::read_dir(tpg.join("acls"))
                .into_iter()
                .flatten()
                .filter_map(std::result::Result::ok)
                .map(|e| {
                    let acl = e.path();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        read(&acl.join("auth/userid")),
                        read(&acl.join("lun_0/write_protect")),
                    )
                })
                .collect();
            acls.sort();
            (target.to_string(), lun, acls)
        })
        .collect()
}
