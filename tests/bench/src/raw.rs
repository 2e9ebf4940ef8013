//! The floor: the minimal raw sequence, by hand. LIO objects written straight to configfs in
//! rtslib's layout (one HBA per storage object), iscsiadm node record and login, polling for the
//! udev link, mkfs and mount. Also wipes all of LIO, as a storage-host reboot does.

use crate::sys::{dir_names, sh, wait_path};
use anyhow::{Context, Result};
use carve_guest_tests::Lab;
use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    time::Duration,
};

/// LIO's configfs root.
pub const CFG: &str = "/sys/kernel/config/target";

/// iSCSI session and connection parameters (tpgt `param/` names, iscsiadm names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// LIO's and open-iscsi's defaults.
    Default,
    /// The target-side session parameters Carve writes (`SESSION_PARAMETERS`), open-iscsi's
    /// defaults on the initiator: the floors of sections 1-3 use it, so that they do the same
    /// work as Carve and their ratio measures the driver, not a configuration difference.
    Carve,
    /// Larger PDUs and bursts on both sides, immediate data, more commands in flight.
    Tuned,
}

/// (target param, initiator node record field, value)
const TUNED: &[(&str, &str, &str)] = &[
    (
        "MaxRecvDataSegmentLength",
        "node.conn[0].iscsi.MaxRecvDataSegmentLength",
        "262144",
    ),
    (
        "MaxXmitDataSegmentLength",
        "node.conn[0].iscsi.MaxXmitDataSegmentLength",
        "262144",
    ),
    (
        "MaxBurstLength",
        "node.session.iscsi.MaxBurstLength",
        "1048576",
    ),
    (
        "FirstBurstLength",
        "node.session.iscsi.FirstBurstLength",
        "262144",
    ),
    ("ImmediateData", "node.session.iscsi.ImmediateData", "Yes"),
    ("InitialR2T", "node.session.iscsi.InitialR2T", "No"),
];

/// One hand-made export of a block device as its own target, LUN 0.
#[derive(Debug, Clone)]
pub struct RawExport {
    /// The block device (e.g. `/dev/vg/lv`).
    pub device: String,
    /// The storage object name.
    pub name: String,
    /// The target IQN.
    pub target: String,
    /// The portal `ip:port`.
    pub portal: String,
    /// Unit serial (VPD 0x80).
    pub serial: String,
    /// Let initiators UNMAP (thin LVs).
    pub thin: bool,
    /// Session parameters.
    pub tuning: Tuning,
    hba: PathBuf,
}

fn w(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).with_context(|| format!("write {value:?} to {}", path.display()))
}

fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("mkdir {}", path.display()))
}

impl RawExport {
    /// An export of `device` named `name` (target `<prefix>:<name>`), HBA chosen from 1000 up
    /// so it never meets Carve's.
    pub fn new(device: &str, name: &str, portal: &str, serial: &str, thin: bool) -> Self {
        let mut i = 1000;
        while Path::new(&format!("{CFG}/core/iblock_{i}")).exists() {
            i += 1;
        }
        Self {
            device: device.into(),
            name: name.into(),
            target: format!("iqn.2024-01.dev.carve.bench:{name}"),
            portal: portal.into(),
            serial: serial.into(),
            thin,
            tuning: Tuning::Carve,
            hba: PathBuf::from(format!("{CFG}/core/iblock_{i}")),
        }
    }

    /// An export of the lab's LV `lv` (`/dev/<vg>/<lv>`, named `lv`) through the lab's portal.
    pub fn lab_lv(lab: &Lab, lv: &str, serial: &str, thin: bool) -> Self {
        Self::new(
            &format!("/dev/{}/{lv}", lab.vg),
            lv,
            &lab.portal,
            serial,
            thin,
        )
    }

    fn tpg(&self) -> PathBuf {
        PathBuf::from(format!("{CFG}/iscsi/{}/tpgt_1", self.target))
    }

    fn object(&self) -> PathBuf {
        self.hba.join(&self.name)
    }

    /// The by-path link the initiator's disk gets.
    pub fn by_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/dev/disk/by-path/ip-{}-iscsi-{}-lun-0",
            self.portal, self.target
        ))
    }

    /// Backstore, target, LUN 0, portal, demo mode off, enabled (no ACL yet).
    pub fn export(&self) -> Result<()> {
        let b = self.object();
        mkdir(&b)?;
        w(&b.join("control"), &format!("udev_path={}", self.device))?;
        w(&b.join("wwn/vpd_unit_serial"), &self.serial)?;
        w(&b.join("enable"), "1")?;
        if self.thin {
            w(&b.join("attrib/emulate_tpu"), "1")?;
        }
        let t = self.tpg();
        mkdir(&t.join("lun/lun_0"))?;
        symlink(&b, t.join("lun/lun_0/obj")).context("LUN link")?;
        mkdir(&t.join("np").join(&self.portal))?;
        w(&t.join("attrib/generate_node_acls"), "0")?;
        w(&t.join("attrib/authentication"), "0")?;
        match self.tuning {
            Tuning::Default => {}
            Tuning::Carve => {
                for (param, value) in csi_controller::lio::SESSION_PARAMETERS {
                    w(&t.join("param").join(param), value)?;
                }
            }
            Tuning::Tuned => {
                for (param, _, value) in TUNED {
                    w(&t.join("param").join(param), value)?;
                }
            }
        }
        w(&t.join("enable"), "1")
    }

    /// An ACL for `initiator` mapping LUN 0.
    pub fn add_acl(&self, initiator: &str) -> Result<()> {
        let acl = self.tpg().join("acls").join(initiator);
        mkdir(&acl.join("lun_0"))?;
        symlink(self.tpg().join("lun/lun_0"), acl.join("lun_0/map")).context("ACL map link")
    }

    /// Removes the ACL of `initiator`.
    pub fn remove_acl(&self, initiator: &str) -> Result<()> {
        let acl = self.tpg().join("acls").join(initiator);
        fs::remove_file(acl.join("lun_0/map"))?;
        fs::remove_dir(acl.join("lun_0"))?;
        Ok(fs::remove_dir(acl)?)
    }

    /// Removes the target and the backstore (ACLs included).
    pub fn unexport(&self) -> Result<()> {
        remove_target(&self.target)?;
        fs::remove_dir(self.object())?;
        Ok(fs::remove_dir(&self.hba)?)
    }

    fn node(&self, extra: &[&str]) -> Result<String> {
        let mut args = vec![
            "-m",
            "node",
            "-T",
            &self.target,
            "-p",
            &self.portal,
            "-I",
            "default",
        ];
        args.extend_from_slice(extra);
        sh("iscsiadm", &args)
    }

    /// `iscsiadm -m node -o new` (plus the tuned session parameters).
    pub fn node_record(&self) -> Result<()> {
        self.node(&["-o", "new"])?;
        if self.tuning == Tuning::Tuned {
            for (_, field, value) in TUNED {
                self.node(&["-o", "update", "-n", field, "-v", value])?;
            }
        }
        Ok(())
    }

    /// Logs in.
    pub fn login(&self) -> Result<()> {
        self.node(&["--login"]).map(drop)
    }

    /// Waits for the by-path link.
    pub fn wait_disk(&self) -> Result<()> {
        wait_path(&self.by_path(), true, Duration::from_mins(1))
    }

    /// Logs out and deletes the node record.
    pub fn logout(&self) -> Result<()> {
        self.node(&["--logout"])?;
        self.node(&["-o", "delete"]).map(drop)
    }
}

/// Removes one target: disables it, then ACLs, portals and LUNs (LIO refuses otherwise).
pub fn remove_target(iqn: &str) -> Result<()> {
    let target = Path::new(CFG).join("iscsi").join(iqn);
    for tpg in dir_names(&target)
        .into_iter()
        .filter(|t| t.starts_with("tpgt_"))
    {
        let t = target.join(&tpg);
        let _ = fs::write(t.join("enable"), "0");
        for acl in dir_names(&t.join("acls")) {
            let a = t.join("acls").join(&acl);
            for lun in dir_names(&a).into_iter().filter(|l| l.starts_with("lun_")) {
                for link in dir_names(&a.join(&lun)) {
                    if a.join(&lun).join(&link).is_symlink() {
                        fs::remove_file(a.join(&lun).join(&link))?;
                    }
                }
                fs::remove_dir(a.join(&lun))?;
            }
            fs::remove_dir(&a)?;
        }
        for np in dir_names(&t.join("np")) {
            fs::remove_dir(t.join("np").join(np))?;
        }
        for lun in dir_names(&t.join("lun")) {
            let l = t.join("lun").join(&lun);
            for link in dir_names(&l) {
                if l.join(&link).is_symlink() {
                    fs::remove_file(l.join(&link))?;
                }
            }
            fs::remove_dir(&l)?;
        }
        fs::remove_dir(&t)?;
    }
    Ok(fs::remove_dir(&target)?)
}

/// Removes every target and storage object from LIO, as a reboot of the storage host does.
pub fn wipe_lio() -> Result<usize> {
    let targets = dir_names(&Path::new(CFG).join("iscsi"));
    let mut n = 0;
    for t in targets
        .iter()
        .filter(|t| t.contains('.') && t.contains(':'))
    {
        remove_target(t)?;
        n += 1;
    }
    let core = Path::new(CFG).join("core");
    for hba in dir_names(&core).into_iter().filter(|h| h != "alua") {
        for object in dir_names(&core.join(&hba)) {
            if object != "hba_info" && object != "hba_mode" {
                fs::remove_dir(core.join(&hba).join(&object))?;
            }
        }
        fs::remove_dir(core.join(&hba))?;
    }
    Ok(n)
}

/// How many targets whose IQN contains `pattern` exist, and how many of them have an ACL.
pub fn count_targets(pattern: &str) -> (usize, usize) {
    let root = Path::new(CFG).join("iscsi");
    let targets: Vec<String> = dir_names(&root)
        .into_iter()
        .filter(|t| t.starts_with("iqn.") && t.contains(pattern))
        .collect();
    let with_acl = targets
        .iter()
        .filter(|t| !dir_names(&root.join(t).join("tpgt_1/acls")).is_empty())
        .count();
    (targets.len(), with_acl)
}
