//! Section 2: latency with N volumes already exported and published (configfs backend, and
//! targetcli at the points asked), against the raw floor at the same N; at the largest N the
//! cost of persistence (saveconfig) and of reconciling LIO from LVM after a wipe.

use crate::{
    csi::{self, Kind},
    raw::{RawExport, count_targets, wipe_lio},
    report::{Sink, Table, median, ms},
    sys::{sh, timed},
};
use anyhow::{Result, bail};
use carve_guest_tests::{Driver, DriverOptions, Lab};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

const BYTES: i64 = 16 << 20;
/// LVM's per-command metadata backup and archive, skipped (a tuning candidate).
const NO_BACKUP: &str = "backup{backup=0 archive=0}";

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Volume counts, ascending.
    pub points: Vec<usize>,
    /// Counts at which the targetcli backend is measured too.
    pub targetcli_points: Vec<usize>,
    /// Repetitions per point (configfs and floor).
    pub reps: usize,
    /// Repetitions per point with targetcli.
    pub targetcli_reps: usize,
    /// Parallel CreateVolume+ControllerPublish calls while populating.
    pub parallel: usize,
    /// Time `targetcli saveconfig` at the largest point.
    pub targetcli_save: bool,
}

async fn start(lab: &Lab, backend: &'static str) -> Driver {
    Driver::start(
        lab,
        DriverOptions {
            lio_backend: backend,
            // The population is hundreds of volumes published to the one guest node: far past
            // the default attach limit, which is not what this section measures.
            controller_args: vec!["--max-volumes-per-node=0".into()],
            ..Default::default()
        },
    )
    .await
}

/// Brings the population to `n` published volumes; returns the time it took.
async fn populate(
    driver: Driver,
    from: usize,
    n: usize,
    parallel: usize,
) -> Result<(Driver, Duration)> {
    let d = Arc::new(driver);
    let t = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for k in from..n {
        let (d, sem) = (Arc::clone(&d), Arc::clone(&sem));
        set.spawn(async move {
            let _permit = sem.acquire().await;
            let mut v =
                csi::create(&d, &format!("bench-scale-{k}"), BYTES, true, Kind::Ext4).await?;
            csi::publish(&d, &mut v).await
        });
    }
    while let Some(j) = set.join_next().await {
        j??;
    }
    let took = t.elapsed();
    let driver = Arc::try_unwrap(d).map_err(|_| anyhow::anyhow!("driver still shared"))?;
    Ok((driver, took))
}

/// Create+publish and unpublish+delete of a probe volume, `reps` times: (create+publish, delete).
async fn probe(driver: &Driver, tag: &str, reps: usize) -> Result<(Duration, Duration)> {
    let (mut cp, mut del) = (Vec::new(), Vec::new());
    for r in 0..reps {
        let name = format!("bench-probe-{tag}-{r}");
        let t = Instant::now();
        let mut v = csi::create(driver, &name, BYTES, true, Kind::Ext4).await?;
        csi::publish(driver, &mut v).await?;
        cp.push(t.elapsed());
        csi::unpublish(driver, &v.id).await?;
        let ((), d) = csi::time(csi::delete(driver, &v.id)).await?;
        del.push(d);
    }
    Ok((median(&cp), median(&del)))
}

/// Raw floor at the current population: (lvcreate+export+ACL, unexport+lvremove,
/// lvcreate alone, lvcreate without metadata backup, lvs of the VG, lvs of one LV).
fn floor(lab: &Lab, reps: usize) -> Result<[Duration; 6]> {
    let pool = format!("{}/{}", lab.vg, lab.pool);
    let mut s: [Vec<Duration>; 6] = Default::default();
    for r in 0..reps {
        for (i, tuned) in [(0, false), (1, true)] {
            let lv = format!("bscale{r}x{i}");
            let x = RawExport::new(
                &format!("/dev/{}/{lv}", lab.vg),
                &lv,
                &lab.portal,
                "5ca1e",
                true,
            );
            let mut args = vec!["-y", "-q", "-V", "16M", "-T", &pool, "-n", &lv];
            if tuned {
                args.extend(["--config", NO_BACKUP]);
            }
            let ((), lvc) = timed(|| sh("lvcreate", &args).map(drop))?;
            let ((), exp) = timed(|| {
                x.export()?;
                x.add_acl(&lab.initiator)
            })?;
            let full = format!("{}/{lv}", lab.vg);
            if tuned {
                s[3].push(lvc);
                let (_, d) = timed(|| sh("lvs", &["--reportformat", "json", &lab.vg]))?;
                s[4].push(d);
                let (_, d) = timed(|| sh("lvs", &["--reportformat", "json", &full]))?;
                s[5].push(d);
            } else {
                s[2].push(lvc);
                s[0].push(lvc + exp);
            }
            let ((), del) = timed(|| {
                x.unexport()?;
                sh("lvremove", &["-y", "-q", &full]).map(drop)
            })?;
            if !tuned {
                s[1].push(del);
            }
        }
    }
    Ok(s.map(|v| median(&v)))
}

/// Runs the plan, printing the table after every point; returns the final tables.
pub async fn run(lab: &Lab, plan: &Plan, sink: &Sink) -> Result<Vec<Table>> {
    let header = [
        "N exported",
        "populate s (parallel)",
        "Carve create+publish ms",
        "floor lvcreate+export+ACL ms",
        "Carve delete ms",
        "floor unexport+lvremove ms",
        "raw lvcreate ms",
        "lvcreate no-backup ms",
        "lvs VG ms",
        "lvs one LV ms",
        "targetcli create+publish ms",
        "targetcli delete ms",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut driver = start(lab, "configfs").await;
    let mut have = 0;
    let mut extra = Vec::new();
    for &n in &plan.points {
        let (d, took) = populate(driver, have, n, plan.parallel).await?;
        driver = d;
        let pop = format!(
            "{:.1} ({:.0} ms/vol)",
            took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / (n - have).max(1) as f64
        );
        have = n;
        let (cp, del) = probe(&driver, &format!("c{n}"), plan.reps).await?;
        let f = floor(lab, plan.reps)?;
        let mut row = vec![
            n.to_string(),
            pop,
            ms(cp),
            ms(f[0]),
            ms(del),
            ms(f[1]),
            ms(f[2]),
            ms(f[3]),
            ms(f[4]),
            ms(f[5]),
        ];
        if plan.targetcli_points.contains(&n) {
            drop(driver);
            let tc = start(lab, "targetcli").await;
            let (cp, del) = probe(&tc, &format!("t{n}"), plan.targetcli_reps).await?;
            drop(tc);
            row.extend([ms(cp), ms(del)]);
            driver = start(lab, "configfs").await;
        } else {
            row.extend(["–".into(), "–".into()]);
        }
        rows.push(row);
        let mut t = Table::new(
            format!(
                "2. Scale (so far, median of {} reps; targetcli {})",
                plan.reps, plan.targetcli_reps
            ),
            &header,
        );
        for r in &rows {
            t.row(r.clone());
        }
        sink.table(&t);
    }
    // Persistence and reconciliation at the largest point.
    let mut p = Table::new(
        format!("2b. Persistence and reboot recovery at N = {have}"),
        &["what", "ms", "notes"],
    );
    let lio = csi_controller::lio::configfs::ConfigfsLio::new(crate::raw::CFG);
    let path = std::path::PathBuf::from("/var/tmp/bench-saveconfig.json");
    let t = Instant::now();
    let saved = csi_controller::lio::saveconfig::save_now(&lio, &path).await?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    p.row(vec![
        "Carve saveconfig write (the controller's own writer)".into(),
        ms(t.elapsed()),
        format!("{saved} targets, {} KiB, atomic, 0600", size / 1024),
    ]);
    let _ = std::fs::remove_file(&path);
    if plan.targetcli_save {
        let (_, d) = timed(|| {
            sh(
                "targetcli",
                &["saveconfig", "savefile=/var/tmp/bench-targetcli.json"],
            )
        })?;
        p.row(vec![
            "targetcli saveconfig".into(),
            ms(d),
            "for comparison".into(),
        ]);
        let _ = std::fs::remove_file("/var/tmp/bench-targetcli.json");
    }
    // A restart with LIO intact: reconciliation reads everything and finds it in place.
    let (serving, ready) = restart_timed(&mut driver).await?;
    p.row(vec![
        "controller restart, LIO intact → Probe ready".into(),
        ms(ready),
        format!("serving (GetPluginInfo) after {}", ms(serving)),
    ]);
    let (wiped, d) = timed(wipe_lio)?;
    p.row(vec![
        "wipe LIO by configfs (what a reboot does)".into(),
        ms(d),
        format!("{wiped} targets"),
    ]);
    let t = Instant::now();
    let (serving, ready) = restart_timed(&mut driver).await?;
    let deadline = Instant::now() + Duration::from_secs(7200);
    while count_targets("bench-scale") != (have, have) {
        if Instant::now() > deadline {
            bail!(
                "reconcile did not restore {have} exports: {:?}",
                count_targets("bench-scale")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.row(vec![
        "controller restart after the wipe → Probe ready (reconciliation done)".into(),
        ms(ready),
        format!(
            "serving (GetPluginInfo) after {}; {} restores at once",
            ms(serving),
            csi_controller::reconcile::RESTORE_PARALLELISM
        ),
    ]);
    p.row(vec![
        "controller restart → every export and ACL restored".into(),
        ms(t.elapsed()),
        format!("{have} targets with their ACL"),
    ]);
    sink.table(&p);
    extra.push(p);
    // Tear the population down by hand: unpublishing and deleting hundreds of volumes through
    // the driver would take longer than everything measured above and measures nothing new
    // (the probes already time DeleteVolume at every N). The plugins stop first, so the
    // controller's reconciliation cannot restore what is being removed.
    drop(driver);
    let t = Instant::now();
    let wiped = wipe_lio()?;
    sh(
        "lvremove",
        &["-y", "-q", "-S", "lv_name=~^csi-bench-scale-", &lab.vg],
    )?;
    sink.text(&format!(
        "\nscale teardown (by hand: {wiped} targets wiped, one lvremove of the {have} LVs): {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let mut t = Table::new(
        format!(
            "2. Scale (median of {} reps; targetcli {})",
            plan.reps, plan.targetcli_reps
        ),
        &header,
    );
    for r in rows {
        t.row(r);
    }
    let mut out = vec![t];
    out.extend(extra);
    Ok(out)
}

/// Restarts the controller; how long until it answers GetPluginInfo (it serves while it
/// reconciles) and until Probe answers ready (reconciliation done).
async fn restart_timed(driver: &mut Driver) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    let mut client = driver.spawn_controller().await;
    client
        .identity
        .get_plugin_info(csi_proto::v1::GetPluginInfoRequest {})
        .await?;
    let serving = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(7200);
    loop {
        let probe = client
            .identity
            .probe(csi_proto::v1::ProbeRequest {})
            .await?;
        if probe.into_inner().ready != Some(false) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the controller did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = t.elapsed();
    driver.controller = client;
    Ok((serving, ready))
}
