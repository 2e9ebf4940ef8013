//! Processes, files and /proc: timed commands, waiting for a path, finding the driver's
//! processes, their RSS and CPU time.

use anyhow::{Context, Result, bail};
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

/// Runs a program (argv, no shell) and fails with its stderr unless it exits 0.
pub fn sh(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` and returns its result with how long it took.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed()))
}

/// Polls every 10 ms until `path` exists (true) or not (false), up to `limit`.
pub fn wait_path(path: &Path, exists: bool, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while path.exists() != exists {
        if Instant::now() > deadline {
            bail!(
                "{} still {}",
                path.display(),
                if exists { "missing" } else { "present" }
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The pid of the newest process whose `comm` is `name`.
pub fn pid_of(name: &str) -> Option<u32> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            found = Some(found.map_or(pid, |p: u32| p.max(pid)));
        }
    }
    found
}

/// The children of `parent` whose `comm` is `name`: how many, and their VmRSS summed in KiB
/// (the controller's `lvm` shells, `carve_storage::lvm::LvmShell`).
pub fn children_rss_kib(parent: u32, name: &str) -> (usize, u64) {
    let mut found = (0, 0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // After the ")" of comm: state, then the parent's pid (proc(5)).
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if comm.trim() == name && ppid == Some(parent) {
            found.0 += 1;
            found.1 += rss_kib(pid).unwrap_or(0);
        }
    }
    found
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The peak resident set size of `pid` in KiB (`VmHWM` in `/proc/<pid>/status`, proc(5)): the
/// kernel's own high-water mark since the process started or since [`reset_peak_rss`].
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resets `pid`'s `VmHWM` to its current RSS (writing `5` to `/proc/<pid>/clear_refs`, proc(5),
/// Linux 4.0 and later).
pub fn reset_peak_rss(pid: u32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// One `KiB` field of `/proc/<pid>/status` (`key` with its colon).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// User + system CPU time of `pid` so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" of comm: state is field 3; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

/// Names in a directory (empty when it does not exist).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
