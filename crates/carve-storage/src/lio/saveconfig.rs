//! The saveconfig.json file (rtslib-fb's format), kept current for administrators and for the
//! distribution's restore service, and read back at start for CHAP credentials.
//!
//! Invariants: written atomically (tempfile in the same directory, fsync, rename) with mode
//! 0600 from creation on, since it holds CHAP secrets; the content is LIO's current state read
//! from configfs (block storage objects and iSCSI targets); saves are coalesced by a background
//! task ([`SaveHandle`]), because a save costs time proportional to the number of volumes,
//! except where a stale file could grant access that was revoked: ControllerUnpublish and
//! shutdown write it at once ([`SaveHandle::flush`]); the secrets are never logged.

use super::{Lio, LioState};
use csi_common::{Error, Result, contract::Chap};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};
use tracing::{info, warn};

/// Debian's rtslib-fb path.
pub const DEBIAN_PATH: &str = "/etc/rtslib-fb-target/saveconfig.json";
/// The upstream path.
pub const DEFAULT_PATH: &str = "/etc/target/saveconfig.json";

/// The saveconfig path: `configured`, else Debian's if its directory exists, else upstream's.
pub fn detect_path(configured: Option<&Path>) -> PathBuf {
    match configured {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEBIAN_PATH).parent().is_some_and(Path::is_dir) => DEBIAN_PATH.into(),
        None => DEFAULT_PATH.into(),
    }
}

fn portal(address: &str) -> Value {
    let (ip, port) = address.rsplit_once(':').unwrap_or((address, "3260"));
    json!({
        "ip_address": ip.trim_start_matches('[').trim_end_matches(']'),
        "iser": false,
        "offload": false,
        "port": port.parse::<u16>().unwrap_or(3260),
    })
}

/// The rtslib-format document for `state`.
pub fn document(state: &LioState) -> Value {
    let objects: Vec<Value> = state
        .storage_objects
        .iter()
        .map(|o| {
            json!({
                "attributes": { "emulate_tpu": u8::from(o.emulate_tpu) },
                "dev": o.device.clone().unwrap_or_default(),
                "name": o.name,
                "plugin": "block",
                "readonly": false,
                "write_back": false,
                "wwn": o.serial.clone().unwrap_or_default(),
            })
        })
        .collect();
    let targets: Vec<Value> = state
        .targets
        .iter()
        .filter(|t| t.has_tpg)
        .map(|t| {
            let luns: Vec<Value> = t
                .lun0_object
                .iter()
                .map(|o| json!({"index": 0, "storage_object": format!("/backstores/block/{o}")}))
                .collect();
            let acls: Vec<Value> = t
                .acls
                .iter()
                .map(|a| {
                    let mut acl = json!({
                        "mapped_luns": if a.mapped_lun0 {
                            vec![json!({"index": 0, "tpg_lun": 0, "write_protect": a.write_protect})]
                        } else { vec![] },
                        "node_wwn": a.initiator,
                    });
                    for (key, value) in [
                        ("chap_userid", &a.auth.userid),
                        ("chap_password", &a.auth.password),
                        ("chap_mutual_userid", &a.auth.userid_mutual),
                        ("chap_mutual_password", &a.auth.password_mutual),
                    ] {
                        if let Some(v) = value {
                            acl[key] = json!(v);
                        }
                    }
                    acl
                })
                .collect();
            json!({
                "fabric": "iscsi",
                "tpgs": [{
                    "attributes": {
                        "authentication": u8::from(t.authentication),
                        "generate_node_acls": u8::from(t.generate_node_acls),
                    },
                    "enable": t.enabled,
                    "luns": luns,
                    "node_acls": acls,
                    "parameters": t
                        .parameters
                        .iter()
                        .map(|(name, value)| (name.clone(), json!(value)))
                        .collect::<serde_json::Map<String, Value>>(),
                    "portals": t.portals.iter().map(|p| portal(p)).collect::<Vec<_>>(),
                    "tag": 1,
                }],
                "wwn": t.iqn,
            })
        })
        .collect();
    json!({"fabric_modules": [], "storage_objects": objects, "targets": targets})
}

/// Writes `document` to `path` atomically with mode 0600.
pub fn write_atomic(path: &Path, document: &Value) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(document)
        .map_err(|e| Error::internal(format!("saveconfig: {e}")))?;
    let mut file = tempfile::Builder::new()
        .prefix(".saveconfig")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| {
        Error::internal(format!(
            "saveconfig: rename to {}: {}",
            path.display(),
            e.error
        ))
    })?;
    Ok(())
}

/// CHAP credentials per (target IQN, initiator IQN) found in a saveconfig document.
pub fn chap_credentials(text: &str) -> Result<HashMap<(String, String), Chap>> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("saveconfig is not valid JSON: {e}")))?;
    let mut out = HashMap::new();
    let str_of = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    for target in doc
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(iqn) = str_of(target, "wwn") else {
            continue;
        };
        for tpg in target
            .get("tpgs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for acl in tpg
                .get("node_acls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(node), Some(username), Some(password)) = (
                    str_of(acl, "node_wwn"),
                    str_of(acl, "chap_userid"),
                    str_of(acl, "chap_password"),
                ) else {
                    continue;
                };
                let mutual =
                    str_of(acl, "chap_mutual_userid").zip(str_of(acl, "chap_mutual_password"));
                out.insert(
                    (iqn.clone(), node),
                    Chap {
                        username,
                        password,
                        mutual,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Requests coalesced saves from a background task, and immediate ones ([`SaveHandle::flush`]).
///
/// Saves are serialized (one writer of the file at a time); a failed save leaves the handle
/// dirty ([`SaveHandle::pending`]) until one succeeds.
#[derive(Debug, Clone)]
pub struct SaveHandle {
    wake: Arc<tokio::sync::Notify>,
    lio: Arc<dyn Lio>,
    path: PathBuf,
    turn: Arc<tokio::sync::Mutex<()>>,
    dirty: Arc<std::sync::atomic::AtomicBool>,
}

impl SaveHandle {
    /// Starts the saver: after each request it waits `delay` (gathering more requests), then
    /// writes the current LIO state to `path` once.
    pub fn spawn(lio: Arc<dyn Lio>, path: PathBuf, delay: Duration) -> Self {
        let handle = Self {
            wake: Arc::new(tokio::sync::Notify::new()),
            lio,
            path,
            turn: Arc::default(),
            dirty: Arc::default(),
        };
        let saver = handle.clone();
        tokio::spawn(async move {
            loop {
                saver.wake.notified().await;
                tokio::time::sleep(delay).await;
                if let Err(e) = saver.flush().await {
                    warn!(path = %saver.path.display(), error = %e, "cannot save LIO configuration");
                }
            }
        });
        handle
    }

    /// Asks for a save soon.
    pub fn request(&self) {
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Whether a change may not be in the file yet (requested, or the last save failed).
    pub fn pending(&self) -> bool {
        self.dirty.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes the current LIO state now (after any save in progress); the targets saved.
    pub async fn flush(&self) -> Result<usize> {
        let _turn = self.turn.lock().await;
        // Cleared before reading the state: a change made during the save asks again.
        self.dirty.store(false, std::sync::atomic::Ordering::SeqCst);
        match save_now(self.lio.as_ref(), &self.path).await {
            Ok(count) => {
                info!(path = %self.path.display(), targets = count, "saved LIO configuration");
                Ok(count)
            }
            Err(e) => {
                self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
                Err(e)
            }
        }
    }
}

/// Writes the current state now; the number of targets saved.
pub async fn save_now(lio: &dyn Lio, path: &Path) -> Result<usize> {
    let state = lio.state().await?;
    if !state.other_hbas.is_empty() {
        warn!(hbas = ?state.other_hbas, "saveconfig holds block backstores only; others are not saved");
    }
    let doc = document(&state);
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomic(&path, &doc))
        .await
        .map_err(|e| Error::internal(format!("saveconfig task failed: {e}")))??;
    Ok(state.targets.len())
}

#[cfg(test)]
#[path = "saveconfig_tests.rs"]
mod tests;
