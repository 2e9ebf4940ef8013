//! Section 5: resident memory (VmRSS) and CPU of each binary, idle and while busy.

use crate::{
    report::Table,
    sys::{children_rss_kib, cpu_time, peak_rss_kib, pid_of, reset_peak_rss, rss_kib},
};
use std::time::{Duration, Instant};

/// The two binaries.
pub const BINARIES: [&str; 2] = ["csi-controller", "csi-node"];

/// Idle footprint of each binary over `window`: RSS at the end, CPU share during it.
pub async fn idle(window: Duration) -> Table {
    let pids: Vec<Option<u32>> = BINARIES.iter().map(|b| pid_of(b)).collect();
    let before: Vec<Option<Duration>> = pids.iter().map(|p| p.and_then(cpu_time)).collect();
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let wall = t.elapsed();
    let mut table = Table::new(
        format!(
            "5. Footprint, idle ({}s window, release build)",
            window.as_secs()
        ),
        &[
            "binary",
            "VmRSS MiB",
            "CPU % idle",
            "CPU s since start",
            "target ≤15 MiB",
        ],
    );
    for (i, b) in BINARIES.iter().enumerate() {
        let Some(pid) = pids[i] else {
            table.row(vec![b.to_string(), "not running".into()]);
            continue;
        };
        let rss = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
        let after = cpu_time(pid);
        let cpu = match (before[i], after) {
            (Some(a), Some(b)) => {
                format!(
                    "{:.2}",
                    b.saturating_sub(a).as_secs_f64() / wall.as_secs_f64() * 100.0
                )
            }
            _ => "?".into(),
        };
        table.row(vec![
            b.to_string(),
            format!("{rss:.1}"),
            cpu,
            after.map_or("?".into(), |c| format!("{:.2}", c.as_secs_f64())),
            if rss <= 15.0 {
                "yes".into()
            } else {
                format!("NO (+{:.1} MiB)", rss - 15.0)
            },
        ]);
    }
    if let Some(pid) = pids[0] {
        let (count, kib) = children_rss_kib(pid, "lvm");
        table.row(vec![
            format!("csi-controller's lvm shells ({count})"),
            format!("{:.1}", kib as f64 / 1024.0),
            "–".into(),
            "–".into(),
            "(reported: separate LVM processes, at most four idle)".into(),
        ]);
    }
    table
}

/// The peak RSS of both binaries over a stretch of work, from the kernel's own high-water mark
/// (`VmHWM`), reset at [`PeakRss::start`]: nothing samples `/proc` while the work runs, so the
/// measurement takes no CPU from what it measures.
#[derive(Debug)]
pub struct PeakRss {
    pids: [Option<u32>; 2],
}

impl PeakRss {
    /// Resets both binaries' high-water marks.
    pub fn start() -> Self {
        let pids = BINARIES.map(pid_of);
        for pid in pids.iter().flatten() {
            if let Err(e) = reset_peak_rss(*pid) {
                eprintln!("bench: cannot reset the peak RSS of pid {pid}: {e}");
            }
        }
        Self { pids }
    }

    /// The peaks since [`PeakRss::start`] in MiB (controller, node); 0 for a binary not running.
    pub fn finish(self) -> [f64; 2] {
        self.pids
            .map(|pid| pid.and_then(peak_rss_kib).unwrap_or(0) as f64 / 1024.0)
    }
}
