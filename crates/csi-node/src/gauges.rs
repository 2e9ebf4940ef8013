//! Node gauges: iSCSI sessions by kernel state, staged volumes, staged volumes whose paths are
//! all down or (multipath) some down, read from sysfs and the stage records on a timer.
//!
//! Invariants: nothing here runs a command or touches a device: sessions come from
//! `/sys/class/iscsi_session` ([`crate::iscsi::sysfs`]) and staged volumes from the records in
//! the state directory; a record that cannot be read is counted, never skipped silently; a
//! session state that was reported once is set back to 0 when no session is in it any more.

use crate::{
    iscsi::sysfs::{self, Session},
    records::{self, StageRecord},
};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

/// How often [`spawn_refresh`] reads sysfs and the stage records.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// The kernel session state of a working path.
pub const LOGGED_IN: &str = "LOGGED_IN";

/// What the node gauges say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReadings {
    /// iSCSI sessions (every target) by kernel state.
    pub sessions: BTreeMap<String, usize>,
    /// Readable stage records.
    pub staged: usize,
    /// Stage records that could not be read or decoded.
    pub unreadable_records: usize,
    /// Staged volumes without a logged-in session to their target with their LUN attached.
    pub paths_down: usize,
    /// Staged volumes with some but not all of their recorded paths working (multipath).
    pub paths_degraded: usize,
}

/// Stage records in `dir` (`<volume>.json`; temp files skipped) and how many failed to read.
pub fn stage_records(dir: &Path) -> (Vec<StageRecord>, usize) {
    let mut records = Vec::new();
    let mut unreadable = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (records, 0); // no directory: nothing was ever staged here
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        match std::fs::read_to_string(entry.path()).map(|t| records::decode(&t)) {
            Ok(Ok(record)) => records.push(record),
            _ => unreadable += 1,
        }
    }
    (records, unreadable)
}

/// The gauges of these records and sessions (pure).
pub fn readings(records: &[StageRecord], unreadable: usize, sessions: &[Session]) -> NodeReadings {
    let mut by_state = BTreeMap::new();
    for session in sessions {
        *by_state.entry(session.state.clone()).or_insert(0) += 1;
    }
    // How many of a record's paths have a logged-in session with the LUN attached.
    let up = |r: &StageRecord| {
        r.portals()
            .iter()
            .filter(|p| {
                sessions.iter().any(|s| {
                    s.target == r.target
                        && s.portal.is_none_or(|sp| sp == **p)
                        && s.state == LOGGED_IN
                        && s.disk(r.lun).is_some()
                })
            })
            .count()
    };
    NodeReadings {
        sessions: by_state,
        staged: records.len(),
        unreadable_records: unreadable,
        paths_down: records.iter().filter(|r| up(r) == 0).count(),
        paths_degraded: records
            .iter()
            .filter(|r| (1..r.portals().len()).contains(&up(r)))
            .count(),
    }
}

/// Publishes `now`; `seen` is every session state published before (set to 0 when gone).
fn record(now: &NodeReadings, seen: &mut Vec<String>) {
    for state in now.sessions.keys() {
        if !seen.contains(state) {
            seen.push(state.clone());
        }
    }
    for state in seen.iter() {
        let count = now.sessions.get(state).copied().unwrap_or(0);
        metrics::gauge!("carve_node_iscsi_sessions", "state" => state.clone()).set(count as f64);
    }
    metrics::gauge!("carve_node_staged_volumes").set(now.staged as f64);
    metrics::gauge!("carve_node_stage_records_unreadable").set(now.unreadable_records as f64);
    metrics::gauge!("carve_node_paths_down").set(now.paths_down as f64);
    metrics::gauge!("carve_node_paths_degraded").set(now.paths_degraded as f64);
}

/// Describes the gauges to the metrics exporter (their HELP lines).
pub fn describe() {
    use metrics::describe_gauge;
    describe_gauge!(
        "carve_node_iscsi_sessions",
        "iSCSI sessions on this node (every target), by kernel state"
    );
    describe_gauge!(
        "carve_node_staged_volumes",
        "Volumes staged on this node (stage records)"
    );
    describe_gauge!(
        "carve_node_stage_records_unreadable",
        "Stage records that cannot be read or decoded (unstage of those volumes will fail)"
    );
    describe_gauge!(
        "carve_node_paths_degraded",
        "Staged multipath volumes with some but not all of their paths logged in with the LUN attached"
    );
    metrics::describe_counter!(
        "carve_node_sessions_restored_total",
        "Paths of staged volumes the upkeep loop restored, by action (login, rescan, map_path)"
    );
    describe_gauge!(
        "carve_node_paths_down",
        "Staged volumes without a logged-in session to their target with their LUN attached"
    );
}

/// Reads `sys` (normally `/sys`) and the records in `state_dir` every `interval`.
pub fn spawn_refresh(
    sys: PathBuf,
    state_dir: PathBuf,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = vec![LOGGED_IN.to_string()];
        loop {
            tick.tick().await;
            let (sys, dir) = (sys.clone(), state_dir.clone());
            let now = tokio::task::spawn_blocking(move || {
                let (records, unreadable) = stage_records(&dir);
                readings(&records, unreadable, &sysfs::sessions(&sys))
            })
            .await;
            match now {
                Ok(now) => record(&now, &mut seen),
                Err(error) => tracing::warn!(%error, "node gauges: reading sysfs failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        iscsi::sysfs::build_session,
        records::{Access, StateDir, sample},
    };

    #[test]
    fn sessions_records_and_paths_down() {
        let sys = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        for volume in ["csi-up", "csi-failed", "csi-nodisk", "csi-nosession"] {
            state
                .save(&sample(volume, Path::new("/stage"), Access::Block))
                .unwrap();
        }
        std::fs::write(dir.path().join("csi-bad.json"), "{not json").unwrap();
        std::fs::write(dir.path().join(".stage1234"), "partial").unwrap();
        build_session(
            sys.path(),
            1,
            "iqn.2024-01.dev.carve:csi-up",
            LOGGED_IN,
            Some("sdb"),
        );
        build_session(
            sys.path(),
            2,
            "iqn.2024-01.dev.carve:csi-failed",
            "FAILED",
            Some("sdc"),
        );
        build_session(
            sys.path(),
            3,
            "iqn.2024-01.dev.carve:csi-nodisk",
            LOGGED_IN,
            None,
        );
        build_session(
            sys.path(),
            4,
            "iqn.2024-01.example:other",
            LOGGED_IN,
            Some("sdd"),
        );

        let (records, unreadable) = stage_records(dir.path());
        let now = readings(&records, unreadable, &sysfs::sessions(sys.path()));
        assert_eq!(now.staged, 4);
        assert_eq!(
            now.unreadable_records, 1,
            "the corrupt record, not the temp file"
        );
        assert_eq!(
            now.sessions,
            BTreeMap::from([("FAILED".to_string(), 1), (LOGGED_IN.to_string(), 3)])
        );
        assert_eq!(now.paths_down, 3, "failed, no disk, no session");
    }

    #[test]
    fn no_state_directory_is_nothing_staged() {
        let missing = Path::new("/nonexistent/carve-state");
        assert_eq!(stage_records(missing).0.len(), 0);
        assert_eq!(readings(&[], 0, &[]), NodeReadings::default());
    }
}
