//! Section 3: N CreateVolume calls at once (distinct names), as external-provisioner issues
//! them; ABORTED is retried. All must succeed; then all are deleted at once; nothing may leak.

use crate::{
    csi::{self, Kind},
    footprint::PeakRss,
    raw::RawExport,
    report::{Table, median, ms, ratio},
    sys::{sh, timed},
};
use anyhow::{Result, bail};
use carve_guest_tests::Driver;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

const BYTES: i64 = 16 << 20;

/// Median of raw lvcreate + configfs export of one thin LV (then removed), `reps` times.
fn raw_create_floor(driver: &Driver, reps: usize) -> Result<Duration> {
    let lab = &driver.lab;
    let pool = format!("{}/{}", lab.vg, lab.pool);
    let mut samples = Vec::new();
    for i in 0..reps {
        let lv = format!("bconc{i}");
        let x = RawExport::new(
            &format!("/dev/{}/{lv}", lab.vg),
            &lv,
            &lab.portal,
            "c0ffee",
            true,
        );
        let ((), d) = timed(|| {
            sh(
                "lvcreate",
                &["-y", "-q", "-V", "16M", "-T", &pool, "-n", &lv],
            )?;
            x.export()
        })?;
        samples.push(d);
        x.unexport()?;
        sh("lvremove", &["-y", "-q", &format!("{}/{lv}", lab.vg)])?;
    }
    Ok(median(&samples))
}

/// Runs each burst size in `sizes`; returns the table.
pub async fn run(driver: Arc<Driver>, sizes: &[usize], floor_reps: usize) -> Result<Table> {
    let floor = raw_create_floor(&driver, floor_reps.max(1))?;
    let mut t = Table::new(
        "3. Concurrency: N parallel CreateVolume (thin 16 MiB), then N parallel DeleteVolume",
        &[
            "N",
            "ok",
            "ABORTED retries",
            "create total ms",
            "serial floor ms",
            "vs floor",
            "per volume ms",
            "delete total ms",
            "peak RSS ctrl/node MiB",
            "leaks",
        ],
    );
    t.note(format!(
        "Serial floor = N × median raw `lvcreate` + configfs export of one thin LV ({} ms).",
        ms(floor)
    ));
    for &n in sizes {
        let aborted = csi::ABORTED_RETRIES.load(std::sync::atomic::Ordering::Relaxed);
        let peak = PeakRss::start();
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let d = Arc::clone(&driver);
            set.spawn(async move {
                let t = Instant::now();
                let r =
                    csi::create(&d, &format!("bench-conc-{n}-{i}"), BYTES, true, Kind::Ext4).await;
                (r, t.elapsed())
            });
        }
        let mut ids = Vec::new();
        let mut errors = Vec::new();
        while let Some(j) = set.join_next().await {
            match j? {
                (Ok(v), _) => ids.push(v.id),
                (Err(e), _) => errors.push(e.to_string()),
            }
        }
        let create_total = start.elapsed();
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for id in ids.clone() {
            let d = Arc::clone(&driver);
            set.spawn(async move { csi::delete(&d, &id).await });
        }
        while let Some(j) = set.join_next().await {
            if let Err(e) = j? {
                errors.push(e.to_string());
            }
        }
        let delete_total = start.elapsed();
        let [pc, pn] = peak.finish().await;
        let leaks = carve_guest_tests::leaks::leaks(&driver.lab, None);
        let serial = floor * n as u32;
        t.row(vec![
            n.to_string(),
            format!("{}/{n}", ids.len()),
            (csi::ABORTED_RETRIES.load(std::sync::atomic::Ordering::Relaxed) - aborted).to_string(),
            ms(create_total),
            ms(serial),
            ratio(create_total, serial),
            ms(create_total / n as u32),
            ms(delete_total),
            format!("{pc:.1} / {pn:.1}"),
            leaks.len().to_string(),
        ]);
        if !errors.is_empty() || !leaks.is_empty() {
            for e in errors.iter().take(5) {
                t.note(format!("error: {e}"));
            }
            for l in leaks.iter().take(5) {
                t.note(format!("leak: {l}"));
            }
            bail!(
                "{}\nconcurrency {n}: {} errors, {} leaks",
                t.render(),
                errors.len(),
                leaks.len()
            );
        }
    }
    Ok(t)
}
