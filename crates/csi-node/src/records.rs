//! Stage records: one small versioned JSON file per staged volume in the state directory, named
//! `<volume id>.json` by the id as the CO sends it (bare `csi-…`, or placed `AGENT:VG:csi-…`:
//! [`VolumeHandle`]).
//!
//! Invariants: a record is written (atomically: temp file in the same directory, fsync, rename,
//! directory fsync; mode 0600) *before* the first side effect of a stage, so a crash at any
//! point leaves what unstage needs; it lives in the state directory, next to and never inside
//! the staging mount; it holds no secret; an unknown version is an error, never a guess.
//! Records written before multipath (one `portal`, no `portals`, no `multipath`) still read:
//! they are single-path stages of that one portal.

use crate::device::Expected;
use csi_common::{
    Error, Result,
    ids::{Iqn, VolumeId},
    placed::VolumeHandle,
};
use serde::{Deserialize, Serialize};
use std::{
    io::Write,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// The record format version this build writes and reads.
pub const VERSION: u32 = 1;

/// How the volume is accessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Access {
    /// Raw block device.
    Block,
    /// Mounted filesystem.
    Mount {
        /// Filesystem type (resolved, never empty).
        fs_type: String,
        /// Mount flags from the capability.
        flags: Vec<String>,
    },
}

/// What a stage did, enough to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Format version.
    pub version: u32,
    /// The volume.
    pub volume_id: String,
    /// The staging path.
    pub staging_path: PathBuf,
    /// Access type and its parameters.
    pub access: Access,
    /// The capability's access mode (CSI enum value).
    pub access_mode: i32,
    /// Target IQN.
    pub target: String,
    /// The first portal (the only one of a single-path stage). Kept so that records stay
    /// readable by builds that know only this field.
    pub portal: SocketAddr,
    /// Every portal of the stage, in publish-context order (empty in records written before
    /// multipath: then `portal` is the only one; see [`StageRecord::portals`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub portals: Vec<SocketAddr>,
    /// The WWID of the dm-multipath map the volume is used through (`3` + the NAA identifier,
    /// as multipath-tools names it), or `None` for a single-path stage used through its disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath: Option<String>,
    /// LUN.
    pub lun: u32,
    /// Expected unit serial.
    pub serial: String,
    /// Kernel name of the disk (or of the multipath map, `dm-N`) once found (informational;
    /// teardown re-reads sysfs).
    pub device: Option<String>,
}

impl StageRecord {
    /// Every portal of the stage: `portals`, or `portal` alone in a record that predates it.
    pub fn portals(&self) -> Vec<SocketAddr> {
        if self.portals.is_empty() {
            vec![self.portal]
        } else {
            self.portals.clone()
        }
    }

    /// The disk this record expects through its first portal.
    pub fn expected(&self) -> Result<Expected> {
        self.expected_at(self.portal)
    }

    /// The disk this record expects through `portal`.
    pub fn expected_at(&self, portal: SocketAddr) -> Result<Expected> {
        Ok(Expected {
            portal,
            target: Iqn::parse(&self.target)?,
            lun: self.lun,
            serial: self.serial.clone(),
        })
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Records under `dir` (created 0700 on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, volume: &VolumeHandle) -> PathBuf {
        self.dir.join(format!("{volume}.json"))
    }

    /// The record of `volume`, if any.
    pub fn load(&self, volume: &VolumeHandle) -> Result<Option<StageRecord>> {
        let path = self.path(volume);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::internal(format!("read {}: {e}", path.display()))),
        };
        decode(&text)
            .map(Some)
            .map_err(|e| e.context(path.display()))
    }

    /// Writes `record` atomically.
    pub fn save(&self, record: &StageRecord) -> Result<()> {
        let fail = |what: &str, e: std::io::Error| {
            Error::internal(format!(
                "stage record {what} in {}: {e}",
                self.dir.display()
            ))
        };
        if !self.dir.exists() {
            std::fs::create_dir_all(&self.dir).map_err(|e| fail("mkdir", e))?;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| fail("chmod", e))?;
        }
        let volume = VolumeHandle::parse(&record.volume_id)?;
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::internal(e.to_string()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".stage")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.dir)
            .map_err(|e| fail("temp file", e))?;
        tmp.write_all(&json)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| fail("write", e))?;
        tmp.persist(self.path(&volume))
            .map_err(|e| fail("rename", e.error))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail("fsync dir", e))?;
        Ok(())
    }

    /// The volumes whose records are here and whose local id is `local` (the one a target IQN
    /// ends with): the bare id's, and any placed one's (`AGENT:VG:<local>`), read from the file
    /// names, so an unreadable record is still found.
    pub fn holders_of(&self, local: &VolumeId) -> Result<Vec<VolumeHandle>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::internal(format!("read {}: {e}", self.dir.display())));
            }
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Ok(handle) = VolumeHandle::parse(id)
                && handle.local() == local
            {
                found.push(handle);
            }
        }
        Ok(found)
    }

    /// Deletes the record of `volume`; a missing record is fine.
    pub fn remove(&self, volume: &VolumeHandle) -> Result<()> {
        match std::fs::remove_file(self.path(volume)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::internal(format!(
                "remove stage record of {volume}: {e}"
            ))),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Decodes a record, refusing versions this build does not know.
pub fn decode(text: &str) -> Result<StageRecord> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned =
        serde_json::from_str(text).map_err(|e| Error::internal(format!("stage record: {e}")))?;
    if v.version != VERSION {
        return Err(Error::internal(format!(
            "stage record version {} is not supported by this build (version {VERSION})",
            v.version
        )));
    }
    serde_json::from_str(text).map_err(|e| Error::internal(format!("stage record: {e}")))
}

#[cfg(test)]
pub fn sample(volume: &str, staging: &Path, access: Access) -> StageRecord {
    StageRecord {
        version: VERSION,
        volume_id: volume.into(),
        staging_path: staging.into(),
        access,
        access_mode: 1,
        target: format!("iqn.2024-01.dev.carve:{volume}"),
        portal: "127.0.0.1:3260".parse().unwrap(),
        portals: vec![],
        multipath: None,
        lun: 0,
        serial: "5a0c1e00-0000-4000-8000-00000000c0de".into(),
        device: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_atomic_private_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let v = VolumeHandle::parse("csi-v1").unwrap();
        assert_eq!(state.load(&v).unwrap(), None);
        let rec = sample(
            "csi-v1",
            Path::new("/stage/v1"),
            Access::Mount {
                fs_type: "ext4".into(),
                flags: vec![],
            },
        );
        state.save(&rec).unwrap();
        assert_eq!(state.load(&v).unwrap(), Some(rec.clone()));
        let file = dir.path().join("state/csi-v1.json");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp files left");
        let future = std::fs::read_to_string(&file)
            .unwrap()
            .replace("\"version\": 1", "\"version\": 2");
        let err = decode(&future).unwrap_err();
        assert!(err.message().contains("version 2"), "{err}");
        std::fs::write(&file, "{not json").unwrap();
        assert!(
            state.load(&v).is_err(),
            "a corrupt record is an error, not 'not staged'"
        );
        state.remove(&v).unwrap();
        state.remove(&v).unwrap();
        assert_eq!(state.load(&v).unwrap(), None);
    }

    /// A volume of a non-default agent (`AGENT:VG:csi-…`, issue 19) has its own record, found
    /// by the local id its target ends with, beside the bare id's.
    #[test]
    fn placed_ids_have_records_found_by_their_local_id() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let local = VolumeId::parse("csi-v1").unwrap();
        assert!(
            state.holders_of(&local).unwrap().is_empty(),
            "no directory yet"
        );
        let placed = VolumeHandle::parse("b:vg0:csi-v1").unwrap();
        let block = || Access::Block;
        state
            .save(&sample("b:vg0:csi-v1", Path::new("/stage/b"), block()))
            .unwrap();
        assert!(dir.path().join("state/b:vg0:csi-v1.json").exists());
        assert_eq!(
            state.load(&placed).unwrap().unwrap().volume_id,
            "b:vg0:csi-v1"
        );
        assert_eq!(state.load(&VolumeHandle::from_local(&local)).unwrap(), None);
        state
            .save(&sample("csi-v1", Path::new("/stage/a"), block()))
            .unwrap();
        state
            .save(&sample("csi-v2", Path::new("/stage/c"), block()))
            .unwrap();
        std::fs::write(dir.path().join("state/c:vg0:csi-v1.json"), "{not json").unwrap();
        let mut holders: Vec<String> = state
            .holders_of(&local)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        holders.sort();
        assert_eq!(holders, ["b:vg0:csi-v1", "c:vg0:csi-v1", "csi-v1"]);
    }

    #[test]
    fn a_record_from_before_multipath_reads_as_a_single_path_stage() {
        let old = r#"{"version":1,"volume_id":"csi-v1","staging_path":"/stage/v1",
            "access":{"type":"block"},"access_mode":1,"target":"iqn.2024-01.dev.carve:csi-v1",
            "portal":"127.0.0.1:3260","lun":0,"serial":"s","device":"sdb"}"#;
        let rec = decode(old).unwrap();
        assert_eq!(rec.portals(), ["127.0.0.1:3260".parse().unwrap()]);
        assert_eq!(rec.multipath, None);
        let mut two = rec.clone();
        two.portals = vec![
            "127.0.0.1:3260".parse().unwrap(),
            "127.0.0.2:3260".parse().unwrap(),
        ];
        two.multipath = Some("36001405".into());
        let text = serde_json::to_string(&two).unwrap();
        assert_eq!(decode(&text).unwrap(), two);
        assert_eq!(two.portals().len(), 2);
        let plain = serde_json::to_string(&rec).unwrap();
        assert!(
            !plain.contains("portals") && !plain.contains("multipath"),
            "a single-path record is written as before: {plain}"
        );
    }
}
