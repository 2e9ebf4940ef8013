//! Section 3: N CreateVolume calls at once (distinct names), as external-provisioner issues
//! them; ABORTED is retried. All must succeed; then all are deleted at once; nothing may leak.
//! Each burst is measured between two runs of its serial floor on the same VG (one just before,
//! one just after), and compared with their mean, so drift over the section hits both alike.

use crate::{
    csi::{self, Kind},
    footprint::PeakRss,
    raw::RawExport,
    report::{Table, ms, ratio, verdict},
    sys::sh,
};
use anyhow::{Result, bail};
use carve_guest_tests::Driver;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

const BYTES: i64 = 16 << 20;

/// The serial floor on the same VG, just before the burst: `n` raw lvcreate + configfs export
/// of a thin LV one after another, so the VG grows to `n` LVs as it does in the burst; returns
/// the total time. Everything is removed afterwards (also when a step fails).
fn serial_floor(driver: &Driver, n: usize) -> Result<Duration> {
    let lab = &driver.lab;
    let pool = format!("{}/{}", lab.vg, lab.pool);
    let mut exports = Vec::new();
    let mut created = Vec::new();
    let start = Instant::now();
    let result = (|| -> Result<()> {
        for i in 0..n {
            let lv = format!("bconc{n}x{i}");
            let x = RawExport::lab_lv(lab, &lv, "c0ffee", true);
            sh(
                "lvcreate",
                &["-y", "-q", "-V", "16M", "-T", &pool, "-n", &lv],
            )?;
            created.push(format!("{}/{lv}", lab.vg));
            exports.push(x.clone());
            x.export()?;
        }
        Ok(())
    })();
    let total = start.elapsed();
    let mut cleanup = Ok(());
    for x in &exports {
        cleanup = cleanup.and(x.unexport());
    }
    for chunk in created.chunks(50) {
        let mut args = vec!["-y", "-q"];
        args.extend(chunk.iter().map(String::as_str));
        cleanup = cleanup.and(sh("lvremove", &args).map(drop));
    }
    result?;
    cleanup?;
    Ok(total)
}

/// Runs each burst size in `sizes`, each right after its serial floor; returns the table.
pub async fn run(driver: Arc<Driver>, sizes: &[usize]) -> Result<Table> {
    let mut t = Table::new(
        "3. Concurrency: N parallel CreateVolume (thin 16 MiB), then N parallel DeleteVolume",
        &[
            "N",
            "ok",
            "ABORTED retries",
            "create total ms",
            "serial floor ms (before / after)",
            "vs floor (mean)",
            "target",
            "met",
            "per volume ms",
            "delete total ms",
            "peak RSS ctrl/node MiB",
            "leaks",
        ],
    );
    t.note(
        "Serial floor = N raw `lvcreate` + configfs export of a thin LV one after another on \
         the same VG (it grows to N LVs, as in the burst), then removed; run just before the \
         burst and again just after its deletes, and the burst is compared with the mean of \
         the two. Met: ratio ≤1.0× with 0 errors and 0 leaks. Peak RSS is the kernel's \
         high-water mark (VmHWM) over the burst and its deletes; nothing samples during them.",
    );
    for &n in sizes {
        let before = serial_floor(&driver, n)?;
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
        let [pc, pn] = peak.finish();
        let leaks = carve_guest_tests::leaks::leaks(&driver.lab, None);
        let after = serial_floor(&driver, n)?;
        let serial = (before + after) / 2;
        let r = create_total.as_secs_f64() / serial.as_secs_f64().max(1e-9);
        let met = if errors.is_empty() && leaks.is_empty() {
            verdict(r, 1.0)
        } else {
            format!("NO ({} errors, {} leaks)", errors.len(), leaks.len())
        };
        t.row(vec![
            n.to_string(),
            format!("{}/{n}", ids.len()),
            (csi::ABORTED_RETRIES.load(std::sync::atomic::Ordering::Relaxed) - aborted).to_string(),
            ms(create_total),
            format!("{} / {}", ms(before), ms(after)),
            ratio(create_total, serial),
            "≤1.0×".into(),
            met,
            ms(create_total.div_f64(n as f64)),
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
