//! Reads LIO's state from configfs into a plain model: block storage objects and iSCSI targets
//! with their portals, LUN 0 and ACLs. Both backends verify their work with it, ListVolumes
//! reports published nodes from it, and the saveconfig writer serialises it.
//!
//! Invariants: read-only; an attribute that cannot be read is absent/false, never a panic; the
//! values the kernel shows with a trailing newline (or `T10 VPD Unit Serial Number: `) are
//! normalised; CHAP passwords are held only in [`AclAuth`], whose `Debug` redacts them.

use super::{
    SESSION_PARAMETERS,
    counted::{self, is_dir},
    layout::{LUN0, Layout},
};
use csi_common::{Result, command::REDACTED};
use std::{fmt, fs, path::Path};

/// One storage object under `core/<hba>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageObjectState {
    /// Its name (Carve: the LV name).
    pub name: String,
    /// Its HBA directory (`iblock_3`).
    pub hba: String,
    /// The backing device (`udev_path`).
    pub device: Option<String>,
    /// Configured and enabled.
    pub enabled: bool,
    /// The unit serial (VPD 0x80).
    pub serial: Option<String>,
    /// UNMAP advertised.
    pub emulate_tpu: bool,
}

/// CHAP credentials of an ACL, as configured in the kernel.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AclAuth {
    /// Initiator user name.
    pub userid: Option<String>,
    /// Initiator password.
    pub password: Option<String>,
    /// Mutual (target) user name.
    pub userid_mutual: Option<String>,
    /// Mutual (target) password.
    pub password_mutual: Option<String>,
}

impl fmt::Debug for AclAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclAuth")
            .field("userid", &self.userid)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("userid_mutual", &self.userid_mutual)
            .field(
                "password_mutual",
                &self.password_mutual.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// One node ACL of a target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclState {
    /// The initiator IQN.
    pub initiator: String,
    /// LUN 0 is mapped for this initiator.
    pub mapped_lun0: bool,
    /// The mapped LUN is write-protected.
    pub write_protect: bool,
    /// CHAP credentials.
    pub auth: AclAuth,
}

/// One iSCSI target (its TPG 1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)] // LIO's own flags, one field each
pub struct TargetState {
    /// The target IQN.
    pub iqn: String,
    /// TPG 1 exists.
    pub has_tpg: bool,
    /// TPG 1 enabled.
    pub enabled: bool,
    /// `ip:port` portals.
    pub portals: Vec<String>,
    /// The storage object LUN 0 maps, by name.
    pub lun0_object: Option<String>,
    /// The HBA directory of that storage object.
    pub lun0_hba: Option<String>,
    /// Demo mode.
    pub generate_node_acls: bool,
    /// CHAP enforced.
    pub authentication: bool,
    /// Node ACLs, sorted by initiator.
    pub acls: Vec<AclState>,
    /// The values of the session parameters Carve sets ([`SESSION_PARAMETERS`]), by name.
    pub parameters: Vec<(String, String)>,
}

impl TargetState {
    /// The parameters of [`SESSION_PARAMETERS`] this target does not have yet, with the wanted
    /// value.
    pub fn parameters_missing(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        SESSION_PARAMETERS.iter().copied().filter(|(name, want)| {
            !self
                .parameters
                .iter()
                .any(|(n, v)| n == name && v.eq_ignore_ascii_case(want))
        })
    }
}

/// Block storage objects and iSCSI targets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LioState {
    /// `core/iblock_*/*`, sorted by name.
    pub storage_objects: Vec<StorageObjectState>,
    /// `iscsi/*`, sorted by IQN.
    pub targets: Vec<TargetState>,
    /// Other HBA plugins present (fileio, ramdisk, …), which Carve leaves alone.
    pub other_hbas: Vec<String>,
}

impl LioState {
    /// The (first) storage object named `name`; a binary search of the sorted list, so that
    /// looking up each of N volumes (reconciliation) stays O(N log N).
    pub fn storage_object(&self, name: &str) -> Option<&StorageObjectState> {
        let at = self
            .storage_objects
            .partition_point(|o| o.name.as_str() < name);
        self.storage_objects.get(at).filter(|o| o.name == name)
    }

    /// The target `iqn`; a binary search of the sorted list.
    pub fn target(&self, iqn: &str) -> Option<&TargetState> {
        let at = self.targets.partition_point(|t| t.iqn.as_str() < iqn);
        self.targets.get(at).filter(|t| t.iqn == iqn)
    }

    /// Replaces what one read of an export covers ([`read_volume_state`] of `iqn` and
    /// `object`): the target `iqn` and, unless `object` is empty, every storage object named
    /// `object` are dropped, then `part`'s targets and storage objects are put in their sorted
    /// places. Everything else is kept as it is.
    pub fn replace_volume(&mut self, iqn: &str, object: &str, part: LioState) {
        self.targets.retain(|t| t.iqn != iqn);
        if !object.is_empty() {
            self.storage_objects.retain(|o| o.name != object);
        }
        for target in part.targets {
            let at = self.targets.partition_point(|t| t.iqn < target.iqn);
            self.targets.insert(at, target);
        }
        for object in part.storage_objects {
            let at = self
                .storage_objects
                .partition_point(|o| o.name < object.name);
            self.storage_objects.insert(at, object);
        }
    }
}

/// An attribute's value, trimmed of the trailing newline the kernel adds.
pub fn read_attr(path: &Path) -> Option<String> {
    counted::touched(path, 1);
    fs::read_to_string(path)
        .ok()
        .map(|v| v.trim_end_matches('\n').to_string())
}

fn read_flag(path: &Path) -> bool {
    read_attr(path).is_some_and(|v| v.trim() == "1")
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Names of the entries of `dir` (none if it does not exist), sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|it| {
            it.filter_map(std::result::Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    counted::touched(dir, 1 + names.len() as u64);
    names.sort();
    names
}

/// The first symlink inside `dir`, resolved to `(hba, object)` from its last two components.
pub fn link_in(dir: &Path) -> Option<(String, String)> {
    entries(dir).into_iter().find_map(|name| {
        counted::touched(&dir.join(&name), 1);
        let dest = fs::read_link(dir.join(&name)).ok()?;
        let mut parts = dest.iter().rev().map(|p| p.to_string_lossy().into_owned());
        let object = parts.next()?;
        let parent = parts.next()?;
        Some((parent, object))
    })
}

/// A `wwn/vpd_unit_serial` value without the kernel's label.
pub fn parse_serial(value: Option<String>) -> Option<String> {
    let v = value?;
    let v = v
        .strip_prefix("T10 VPD Unit Serial Number:")
        .unwrap_or(&v)
        .trim()
        .to_string();
    Some(v).filter(|v| !v.is_empty())
}

fn read_object(dir: &Path, hba: &str, name: &str) -> StorageObjectState {
    StorageObjectState {
        name: name.to_string(),
        hba: hba.to_string(),
        device: non_empty(read_attr(&dir.join("udev_path"))),
        enabled: read_flag(&dir.join("enable")),
        serial: parse_serial(read_attr(&dir.join("wwn/vpd_unit_serial"))),
        emulate_tpu: read_flag(&dir.join("attrib/emulate_tpu")),
    }
}

fn read_acl(dir: &Path, initiator: &str) -> AclState {
    let auth = |f: &str| non_empty(read_attr(&dir.join("auth").join(f)));
    AclState {
        initiator: initiator.to_string(),
        mapped_lun0: link_in(&dir.join(LUN0)).is_some(),
        write_protect: read_flag(&dir.join(LUN0).join("write_protect")),
        auth: AclAuth {
            userid: auth("userid"),
            password: auth("password"),
            userid_mutual: auth("userid_mutual"),
            password_mutual: auth("password_mutual"),
        },
    }
}

fn read_target(layout: &Layout, iqn: &str) -> TargetState {
    let tpg = layout.tpg(iqn);
    let lun0 = link_in(&layout.lun0(iqn));
    TargetState {
        iqn: iqn.to_string(),
        has_tpg: is_dir(&tpg),
        enabled: read_flag(&tpg.join("enable")),
        portals: entries(&tpg.join("np")),
        lun0_hba: lun0.as_ref().map(|(hba, _)| hba.clone()),
        lun0_object: lun0.map(|(_, object)| object),
        generate_node_acls: read_flag(&tpg.join("attrib/generate_node_acls")),
        authentication: read_flag(&tpg.join("attrib/authentication")),
        acls: entries(&tpg.join("acls"))
            .iter()
            .map(|i| read_acl(&layout.acl(iqn, i), i))
            .collect(),
        parameters: SESSION_PARAMETERS
            .iter()
            .filter_map(|(name, _)| {
                read_attr(&tpg.join("param").join(name)).map(|v| (name.to_string(), v))
            })
            .collect(),
    }
}

/// Reads only what one volume's export consists of: the storage object `object` and the target
/// `iqn`. The object is found through the target's LUN 0 link when that maps it (no scan at
/// all); otherwise (no target yet, or a partial export) by looking for it under each `iblock_*`
/// HBA, a readdir and one stat per HBA. Nothing else is read, so the cost does not grow with
/// the other exports' objects, ACLs and attributes. An empty `object` reads the target alone.
pub fn read_volume_state(layout: &Layout, iqn: &str, object: &str) -> LioState {
    let mut state = LioState::default();
    if is_dir(&layout.target(iqn)) {
        state.targets.push(read_target(layout, iqn));
    }
    if object.is_empty() || object.contains('/') {
        return state;
    }
    let linked = state.targets.first().and_then(|t| {
        t.lun0_hba
            .clone()
            .filter(|_| t.lun0_object.as_deref() == Some(object))
    });
    let hbas = match linked {
        Some(hba) => vec![hba],
        None => entries(&layout.core()),
    };
    for hba in hbas {
        let dir = layout.core().join(&hba).join(object);
        if hba.starts_with("iblock_") && is_dir(&dir) {
            state.storage_objects.push(read_object(&dir, &hba, object));
        }
    }
    state
}

/// Reads the whole state under `layout`'s root. A missing `core`/`iscsi` is an empty state.
pub fn read_state(layout: &Layout) -> Result<LioState> {
    let mut state = LioState::default();
    for hba in entries(&layout.core()) {
        if hba.starts_with("iblock_") {
            let dir = layout.core().join(&hba);
            for name in entries(&dir) {
                if is_dir(&dir.join(&name)) {
                    state
                        .storage_objects
                        .push(read_object(&dir.join(&name), &hba, &name));
                }
            }
        } else if hba
            .rsplit_once('_')
            .is_some_and(|(_, n)| n.parse::<u32>().is_ok())
        {
            state.other_hbas.push(hba);
        }
    }
    state.storage_objects.sort_by(|a, b| a.name.cmp(&b.name));
    for iqn in target_names(layout) {
        if is_dir(&layout.target(&iqn)) {
            state.targets.push(read_target(layout, &iqn));
        }
    }
    Ok(state)
}

/// The names under `iscsi/` that are target IQNs (`iqn.`, `eui.`, `naa.`; not `discovery_auth`
/// and the like), sorted: one directory read, whatever the number of targets.
pub fn target_names(layout: &Layout) -> Vec<String> {
    let mut names = entries(&layout.iscsi());
    names.retain(|name| ["iqn.", "eui.", "naa."].iter().any(|p| name.starts_with(p)));
    names
}
