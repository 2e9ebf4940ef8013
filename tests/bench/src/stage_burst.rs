//! Section 6: N NodeStage calls at once on one node (kubelet staging a node's volumes after a
//! reboot, or a burst of pods landing on it), against serial NodeStage measured back to back in
//! the same run on the same node. N volumes (thin 64 MiB ext4) are created and published first;
//! everything is unstaged, unpublished and deleted afterwards, also when a step fails.

use crate::{
    csi::{self, Kind, Vol},
    report::{Table, median, ms, ratio, spread},
};
use anyhow::{Result, bail};
use carve_guest_tests::Driver;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

const BYTES: i64 = 64 << 20;

/// Runs the section: `n` parallel NodeStage, against `serial` NodeStage one at a time.
pub async fn run(driver: Arc<Driver>, n: usize, serial: usize) -> Result<Table> {
    let mut vols = Vec::new();
    let result = measure(&driver, n, serial, &mut vols).await;
    // Cleanup whatever state each volume reached (unstage of an unstaged volume is a no-op).
    let mut cleanup = Vec::new();
    for v in &vols {
        for step in [
            csi::unstage(&driver, v).await,
            csi::unpublish(&driver, &v.id).await,
            csi::delete(&driver, &v.id).await,
        ] {
            if let Err(e) = step {
                cleanup.push(format!("{e:#}"));
            }
        }
    }
    let clean = cleanup.is_empty();
    let cleanup = if clean {
        "the cleanup (one volume at a time) succeeded".to_string()
    } else {
        format!("cleanup failed: {}", cleanup.join("; "))
    };
    match result {
        Ok(t) if clean => Ok(t),
        Ok(t) => bail!("{}\n{cleanup}", t.render()),
        Err(e) => bail!("{e:#}\n{cleanup}"),
    }
}

async fn measure(
    driver: &Arc<Driver>,
    n: usize,
    serial: usize,
    vols: &mut Vec<Vol>,
) -> Result<Table> {
    for i in 0..n.max(serial) {
        let mut v =
            csi::create(driver, &format!("bench-burst-{i}"), BYTES, true, Kind::Ext4).await?;
        vols.push(v.clone());
        csi::publish(driver, &mut v).await?;
        *vols.last_mut().expect("pushed") = v;
    }
    // One untimed stage first: the first login and mkfs of the section pay cold caches.
    if let Some(v) = vols.first() {
        csi::stage(driver, v).await?;
        csi::unstage(driver, v).await?;
    }
    // Serial, back to back just before the burst: stage one, unstage it, the next.
    let mut one = Vec::new();
    for v in vols.iter().take(serial) {
        let ((), d) = csi::time(csi::stage(driver, v)).await?;
        one.push(d);
        csi::unstage(driver, v).await?;
    }
    let (stage_wall, stage_calls, stage_errors) = burst(driver, &vols[..n], |d, v| async move {
        csi::stage(&d, &v).await
    })
    .await?;
    let (unstage_wall, unstage_calls, unstage_errors) =
        burst(driver, &vols[..n], |d, v| async move {
            csi::unstage(&d, &v).await
        })
        .await?;
    let serial_median = median(&one);
    let mut t = Table::new(
        format!("6. {n} parallel NodeStage on one node (thin 64 MiB ext4)"),
        &[
            "what",
            "ok",
            "wall ms",
            "per call min / med / max ms",
            "per-call median vs serial",
            "wall vs N × serial median",
        ],
    );
    t.row(vec![
        format!("serial NodeStage (one at a time, {} volumes)", one.len()),
        format!("{}/{}", one.len(), one.len()),
        ms(one.iter().sum()),
        spread(&one),
        "1.00×".into(),
        "–".into(),
    ]);
    t.row(vec![
        format!("{n} NodeStage at once"),
        format!("{}/{n}", stage_calls.len()),
        ms(stage_wall),
        spread(&stage_calls),
        ratio(median(&stage_calls), serial_median),
        ratio(stage_wall, serial_median.mul_f64(n as f64)),
    ]);
    t.row(vec![
        format!("{n} NodeUnstage at once"),
        format!("{}/{n}", unstage_calls.len()),
        ms(unstage_wall),
        spread(&unstage_calls),
        "–".into(),
        "–".into(),
    ]);
    t.note(
        "Serial NodeStage runs just before the burst, on the same node and volumes (each staged \
         and unstaged in turn). A per-call ratio above 1 is the queueing the burst adds; the wall \
         ratio below 1 is what running them at once saves. No target (reported).",
    );
    let errors: Vec<String> = stage_errors.into_iter().chain(unstage_errors).collect();
    if !errors.is_empty() {
        for e in errors.iter().take(5) {
            t.note(format!("error: {e}"));
        }
        bail!("{}\nstage-burst: {} errors", t.render(), errors.len());
    }
    Ok(t)
}

/// Runs `call` on every volume at once: (wall time, each successful call's time, errors).
async fn burst<F, Fut>(
    driver: &Arc<Driver>,
    vols: &[Vol],
    call: F,
) -> Result<(Duration, Vec<Duration>, Vec<String>)>
where
    F: Fn(Arc<Driver>, Vol) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for v in vols {
        let fut = call(Arc::clone(driver), v.clone());
        set.spawn(async move {
            let t = Instant::now();
            fut.await.map(|()| t.elapsed())
        });
    }
    let (mut times, mut errors) = (Vec::new(), Vec::new());
    while let Some(j) = set.join_next().await {
        match j? {
            Ok(d) => times.push(d),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    Ok((start.elapsed(), times, errors))
}
