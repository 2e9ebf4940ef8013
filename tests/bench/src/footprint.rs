//! Section 5: resident memory (VmRSS) and CPU of each binary, idle and while busy.

use crate::{
    report::Table,
    sys::{cpu_time, pid_of, rss_kib},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

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
    table
}

/// Samples the peak RSS of both binaries every 50 ms until dropped/stopped.
#[derive(Debug)]
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    peaks: Arc<[AtomicU64; 2]>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Starts sampling.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peaks));
        let pids = BINARIES.map(pid_of);
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                for (i, pid) in pids.iter().enumerate() {
                    if let Some(kib) = pid.and_then(rss_kib) {
                        p[i].fetch_max(kib, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { stop, peaks, task }
    }

    /// Stops and returns the peaks in MiB (controller, node).
    pub async fn finish(self) -> [f64; 2] {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        [0, 1].map(|i| self.peaks[i].load(Ordering::Relaxed) as f64 / 1024.0)
    }
}
