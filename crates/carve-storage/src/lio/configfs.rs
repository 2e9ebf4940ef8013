//! The default LIO backend: writes `/sys/kernel/config/target` directly, in rtslib's layout.
//!
//! Invariants: attribute values are written in one `write` without a trailing newline (LIO keeps
//! the newline in CHAP credentials otherwise); each step checks what exists first, so a call
//! completes whatever an interrupted call left; the unit serial is written before the LUN is
//! linked (LIO refuses it once exported) and `write_protect` right after the mapped LUN is
//! linked (the kernel's `core_update_device_list_access` drops a write made before: rtslib's
//! order too; the initiator cannot be logged in yet, as it learns of the ACL only from our
//! answer); a new storage object's HBA index is chosen and the object created under one lock,
//! so concurrent exports never share an HBA, and both are found from the HBA index kept under
//! that lock ([`HbaIndex`]: `core/` is listed once, not on every export); the attach limit's
//! count comes from an index of ACLs kept the same way ([`AclIndex`]); the result is read
//! back and verified before returning. Blocking filesystem work runs on tokio's blocking pool.
//!
//! `plain_directory` mode exists for tests on a tempdir: real configfs removes a group's
//! attribute files and default groups with `rmdir`; a plain directory needs them removed first.

use super::{
    AclSpec, ExportSpec, Lio, LioState, SESSION_PARAMETERS,
    acl_index::AclIndex,
    blocking,
    counted::{exists, io_error, is_dir, symlink, touched, unlink_all_links, write, write_secret},
    hba_index::HbaIndex,
    layout::{Layout, link_alias},
    state::{entries, link_in, read_attr, read_state, read_volume_state, target_names},
    verify_acl, verify_export,
};
use csi_common::{Error, Result, command::BoxFuture, ids::Iqn};
use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};
use tracing::info;

/// [`Lio`] over configfs.
#[derive(Debug, Clone)]
pub struct ConfigfsLio {
    layout: Layout,
    plain_directory: bool,
    /// The HBA index ([`HbaIndex`]; `None` until read, or dropped to be read again), locked
    /// from choosing a free HBA index to creating the object in it, so two exports made at once
    /// never share an HBA (rtslib's layout: one HBA per storage object).
    hbas: Arc<Mutex<Option<HbaIndex>>>,
    /// The ACL index ([`AclIndex`]; `None` until read, or dropped to be read again).
    acls: Arc<Mutex<Option<AclIndex>>>,
}

impl ConfigfsLio {
    /// The backend on the real configfs mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            layout: Layout::new(root),
            plain_directory: false,
            hbas: Arc::default(),
            acls: Arc::default(),
        }
    }

    /// The backend on a plain directory standing in for configfs (tests).
    pub fn plain_directory(root: impl Into<PathBuf>) -> Self {
        Self {
            layout: Layout::new(root),
            plain_directory: true,
            hbas: Arc::default(),
            acls: Arc::default(),
        }
    }

    /// The paths this backend writes.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn mkdir(&self, path: &Path) -> Result<()> {
        touched(path, 1);
        match fs::create_dir(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.plain_directory => {
                fs::create_dir_all(path).map_err(|e| io_error("mkdir", path, &e))
            }
            Err(e) => Err(io_error("mkdir", path, &e)),
        }
    }

    /// `rmdir`, tolerating absence. In plain-directory mode, regular files and empty
    /// subdirectories (what configfs would drop with the group) are removed first.
    fn rmdir(&self, path: &Path) -> Result<bool> {
        if !exists(path) {
            return Ok(false);
        }
        if self.plain_directory {
            plain_clear(path).map_err(|e| io_error("clear", path, &e))?;
        }
        match fs::remove_dir(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("rmdir", path, &e)),
        }
    }

    /// The HBA index, locked (see [`HbaIndex`]).
    fn hbas(&self) -> MutexGuard<'_, Option<HbaIndex>> {
        self.hbas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops the HBA index, so the next change reads configfs again.
    fn forget_hbas(&self) {
        *self.hbas() = None;
    }

    /// The ACL index, locked (see [`AclIndex`]).
    fn acls(&self) -> MutexGuard<'_, Option<AclIndex>> {
        self.acls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `change` to the ACL index if it has been read (else the next read sees it).
    fn acls_changed(&self, change: impl FnOnce(&mut AclIndex)) {
        if let Some(index) = self.acls().as_mut() {
            change(index);
        }
    }

    /// Drops the ACL index, so the next count reads configfs again.
    fn forget_acls(&self) {
        *self.acls() = None;
    }

    /// The directory of the storage object `name`, from the index (read first if need be) and
    /// one `stat`; an entry gone behind the controller's back makes the index be read again.
    fn find_object(&self, slot: &mut Option<HbaIndex>, name: &str) -> Option<PathBuf> {
        let fresh = slot.is_none();
        let index = slot.get_or_insert_with(|| HbaIndex::read(&self.layout));
        let dir = self.layout.core().join(index.object(name)?).join(name);
        if is_dir(&dir) {
            return Some(dir);
        }
        *slot = None;
        if fresh {
            None
        } else {
            self.find_object(slot, name)
        }
    }

    /// Creates `path` unless it exists: `Ok(false)` if it did.
    fn mkdir_new(&self, path: &Path) -> Result<bool> {
        touched(path, 1);
        match fs::create_dir(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.plain_directory => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| io_error("mkdir", parent, &e))?;
                }
                self.mkdir_new(path)
            }
            Err(e) => Err(io_error("mkdir", path, &e)),
        }
    }

    fn ensure_object(&self, spec: &ExportSpec) -> Result<PathBuf> {
        let mut slot = self.hbas();
        let dir = if let Some(dir) = self.find_object(&mut slot, &spec.storage_object) {
            dir
        } else {
            let index = slot.get_or_insert_with(|| HbaIndex::read(&self.layout));
            let n = loop {
                let n = index.free();
                if self.mkdir_new(&self.layout.hba(n))? {
                    break n;
                }
                index.take(n); // made behind our back: never shared
            };
            let dir = self.layout.hba(n).join(&spec.storage_object);
            self.mkdir(&dir)?;
            index.insert(&spec.storage_object, n);
            dir
        };
        drop(slot);
        if read_attr(&dir.join("enable")).as_deref() != Some("1") {
            let device = spec.device.display().to_string();
            // rtslib's order: udev_path, control udev_path, control readonly, enable.
            write(&dir.join("udev_path"), &device)?;
            write(&dir.join("control"), &format!("udev_path={device}"))?;
            write(&dir.join("control"), "readonly=0")?;
            write(&dir.join("enable"), "1")?;
            info!(object = %spec.storage_object, device = %device, "created block storage object");
        }
        let serial_path = dir.join("wwn/vpd_unit_serial");
        let serial = super::state::parse_serial(read_attr(&serial_path));
        if serial.as_deref() != Some(spec.serial.as_str()) {
            if self.plain_directory {
                self.mkdir(&dir.join("wwn"))?;
            }
            write(&serial_path, &spec.serial)?;
        }
        if spec.thin && read_attr(&dir.join("attrib/emulate_tpu")).as_deref() != Some("1") {
            if self.plain_directory {
                self.mkdir(&dir.join("attrib"))?;
            }
            write(&dir.join("attrib/emulate_tpu"), "1")?;
        }
        Ok(dir)
    }

    fn ensure_export_now(&self, spec: &ExportSpec) -> Result<()> {
        let object = self.ensure_object(spec)?;
        let iqn = spec.target.as_str();
        let tpg = self.layout.tpg(iqn);
        self.mkdir(&self.layout.iscsi())?;
        self.mkdir(&self.layout.target(iqn))?;
        self.mkdir(&tpg)?;
        let lun0 = self.layout.lun0(iqn);
        self.mkdir(&lun0)?;
        match link_in(&lun0) {
            Some((_, name)) if name == spec.storage_object => {}
            Some((_, other)) => {
                return Err(Error::internal(format!(
                    "target {iqn} LUN 0 maps storage object {other:?}, not {}",
                    spec.storage_object
                )));
            }
            None => symlink(&object, &lun0.join(link_alias(&spec.target, "lun0")))?,
        }
        let wanted: Vec<String> = spec.portals.iter().map(ToString::to_string).collect();
        for existing in entries(&tpg.join("np")) {
            if !wanted.contains(&existing) {
                self.rmdir(&tpg.join("np").join(&existing))?;
            }
        }
        for portal in &spec.portals {
            self.mkdir(&self.layout.portal(iqn, portal))?;
        }
        for (name, value) in SESSION_PARAMETERS {
            let path = tpg.join("param").join(name);
            if !read_attr(&path).is_some_and(|v| v.eq_ignore_ascii_case(value)) {
                if self.plain_directory {
                    self.mkdir(&tpg.join("param"))?;
                }
                write(&path, value)?;
            }
        }
        if read_attr(&tpg.join("enable")).as_deref() != Some("1") {
            // A new (or never enabled) TPG: demo mode off, CHAP off until an ACL asks for it.
            if self.plain_directory {
                self.mkdir(&tpg.join("attrib"))?;
            }
            write(&tpg.join("attrib/generate_node_acls"), "0")?;
            write(&tpg.join("attrib/authentication"), "0")?;
            write(&tpg.join("enable"), "1")?;
            info!(target = %iqn, object = %spec.storage_object, "exported volume");
        } else if read_attr(&tpg.join("attrib/generate_node_acls")).as_deref() != Some("0") {
            write(&tpg.join("attrib/generate_node_acls"), "0")?;
        }
        verify_export(
            &read_volume_state(&self.layout, iqn, &spec.storage_object),
            spec,
        )
    }

    fn remove_acl_now(&self, iqn: &str, initiator: &str) -> Result<bool> {
        let acl = self.layout.acl(iqn, initiator);
        if !exists(&acl) {
            self.acls_changed(|index| index.revoked(iqn, initiator));
            return Ok(false);
        }
        for lun in entries(&acl) {
            let dir = acl.join(&lun);
            if lun.starts_with("lun_") && is_dir(&dir) {
                unlink_all_links(&dir)?;
                self.rmdir(&dir)?;
            }
        }
        self.rmdir(&acl)?;
        self.acls_changed(|index| index.revoked(iqn, initiator));
        info!(target = %iqn, initiator = %initiator, "removed ACL");
        Ok(true)
    }

    fn remove_export_now(&self, target: &Iqn, object: &str) -> Result<bool> {
        let iqn = target.as_str();
        let mut removed = false;
        let target_dir = self.layout.target(iqn);
        if exists(&target_dir) {
            for tpg_name in entries(&target_dir)
                .into_iter()
                .filter(|n| n.starts_with("tpgt_"))
            {
                let tpg = target_dir.join(&tpg_name);
                if read_attr(&tpg.join("enable")).as_deref() == Some("1") {
                    write(&tpg.join("enable"), "0")?;
                }
                for initiator in entries(&tpg.join("acls")) {
                    self.remove_acl_now(iqn, &initiator)?;
                }
                for lun in entries(&tpg.join("lun")) {
                    let dir = tpg.join("lun").join(&lun);
                    unlink_all_links(&dir)?;
                    self.rmdir(&dir)?;
                }
                for portal in entries(&tpg.join("np")) {
                    self.rmdir(&tpg.join("np").join(&portal))?;
                }
                self.rmdir(&tpg)?;
            }
            self.rmdir(&target_dir)?;
            self.acls_changed(|index| index.target_removed(iqn));
            info!(target = %iqn, "removed target");
            removed = true;
        }
        let mut slot = self.hbas();
        if let Some(dir) = self.find_object(&mut slot, object) {
            self.rmdir(&dir)?;
            // One HBA per object in rtslib's layout; a shared one (made by hand) is kept.
            let hba = dir
                .parent()
                .filter(|h| !entries(h).iter().any(|e| is_dir(&h.join(e))));
            if let Some(hba) = hba {
                self.rmdir(hba)?;
            }
            if let Some(index) = slot.as_mut() {
                index.remove(object, hba.is_some());
            }
            info!(object = %object, "removed storage object");
            removed = true;
        }
        Ok(removed)
    }

    fn ensure_acl_now(&self, target: &Iqn, spec: &AclSpec) -> Result<()> {
        let iqn = target.as_str();
        let tpg = self.layout.tpg(iqn);
        if !is_dir(&tpg) {
            return Err(Error::internal(format!("target {iqn} is not exported")));
        }
        let initiator = spec.initiator.as_str();
        let acl = self.layout.acl(iqn, initiator);
        self.mkdir(&acl)?;
        if let Some(chap) = &spec.chap {
            if self.plain_directory {
                self.mkdir(&acl.join("auth"))?;
            }
            write(&acl.join("auth/userid"), &chap.username)?;
            write_secret(&acl.join("auth/password"), &chap.password)?;
            if let Some((user, password)) = &chap.mutual {
                write(&acl.join("auth/userid_mutual"), user)?;
                write_secret(&acl.join("auth/password_mutual"), password)?;
            }
        }
        let authentication = if spec.chap.is_some() { "1" } else { "0" };
        if read_attr(&tpg.join("attrib/authentication")).as_deref() != Some(authentication) {
            write(&tpg.join("attrib/authentication"), authentication)?;
        }
        let mapped = self.layout.mapped_lun0(iqn, initiator);
        self.mkdir(&mapped)?;
        if link_in(&mapped).is_none() {
            symlink(
                &self.layout.lun0(iqn),
                &mapped.join(link_alias(target, initiator)),
            )?;
            info!(target = %iqn, initiator = %initiator, readonly = spec.readonly,
                chap = spec.chap.is_some(), "created ACL");
        }
        // After the link: the kernel keeps write_protect on the node's LUN entry, which the
        // link creates; before it, a write is accepted and dropped and a read shows nothing.
        let write_protect = if spec.readonly { "1" } else { "0" };
        if read_attr(&mapped.join("write_protect")).as_deref() != Some(write_protect) {
            write(&mapped.join("write_protect"), write_protect)?;
        }
        verify_acl(&read_volume_state(&self.layout, iqn, ""), target, spec)?;
        self.acls_changed(|index| index.granted(iqn, initiator));
        Ok(())
    }
}

fn plain_clear(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_symlink() {
            continue; // a link left behind must make rmdir fail, as on configfs
        }
        if path.is_dir() {
            plain_clear(&path)?;
            let _ = fs::remove_dir(&path);
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

impl Lio for ConfigfsLio {
    fn state(&self) -> BoxFuture<'_, Result<LioState>> {
        let layout = self.layout.clone();
        Box::pin(blocking(move || read_state(&layout)))
    }

    fn target_names(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        let layout = self.layout.clone();
        Box::pin(blocking(move || Ok(target_names(&layout))))
    }

    fn volume_state<'a>(
        &'a self,
        target: &'a Iqn,
        storage_object: &'a str,
    ) -> BoxFuture<'a, Result<LioState>> {
        let (layout, target, object) = (
            self.layout.clone(),
            target.to_string(),
            storage_object.to_string(),
        );
        Box::pin(blocking(move || {
            Ok(read_volume_state(&layout, &target, &object))
        }))
    }

    /// From the ACL index ([`AclIndex`]): no configfs work once it has been read (one listing
    /// of the targets and of each one's ACLs).
    fn targets_with_acl<'a>(
        &'a self,
        prefix: &'a str,
        initiator: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        let (me, prefix, initiator) = (self.clone(), prefix.to_string(), initiator.to_string());
        Box::pin(blocking(move || {
            let mut slot = me.acls();
            let index = slot.get_or_insert_with(|| AclIndex::read(&me.layout));
            Ok(index.targets(&prefix, &initiator))
        }))
    }

    /// A failed export drops the HBA index, so the next one reads configfs again.
    fn ensure_export<'a>(&'a self, spec: &'a ExportSpec) -> BoxFuture<'a, Result<()>> {
        let (me, spec) = (self.clone(), spec.clone());
        Box::pin(blocking(move || {
            me.ensure_export_now(&spec)
                .inspect_err(|_| me.forget_hbas())
        }))
    }

    fn remove_export<'a>(
        &'a self,
        target: &'a Iqn,
        storage_object: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        let (me, target, object) = (self.clone(), target.clone(), storage_object.to_string());
        Box::pin(blocking(move || {
            me.remove_export_now(&target, &object).inspect_err(|_| {
                me.forget_hbas();
                me.forget_acls();
            })
        }))
    }

    fn resync(&self) {
        self.forget_hbas();
        self.forget_acls();
    }

    fn ensure_acl<'a>(&'a self, target: &'a Iqn, acl: &'a AclSpec) -> BoxFuture<'a, Result<()>> {
        let (me, target, acl) = (self.clone(), target.clone(), acl.clone());
        Box::pin(blocking(move || {
            me.ensure_acl_now(&target, &acl)
                .inspect_err(|_| me.forget_acls())
        }))
    }

    fn remove_acl<'a>(
        &'a self,
        target: &'a Iqn,
        initiator: &'a Iqn,
    ) -> BoxFuture<'a, Result<bool>> {
        let (me, target, initiator) = (self.clone(), target.clone(), initiator.clone());
        Box::pin(blocking(move || {
            me.remove_acl_now(target.as_str(), initiator.as_str())
                .inspect_err(|_| me.forget_acls())
        }))
    }
}

#[cfg(test)]
#[path = "configfs_tests.rs"]
mod tests;
