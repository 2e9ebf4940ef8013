//! Section 2: latency with N volumes already exported and published (configfs backend, and
//! targetcli at the points asked), against the raw floor at the same N: each RPC of a probe
//! volume (create, publish, stage, unstage, unpublish, delete) with its spread and its growth
//! since the first point; the controller's RSS at 0 volumes and at each N; controller restarts
//! (reconciliation, LIO intact and after a wipe) at each N from `reconcile_from` and at the
//! largest; at the largest N the cost of persistence (saveconfig). The population is torn down
//! by hand at the end, also when a step fails.

use crate::{
    csi::{self, Kind, Samples, Vol, record},
    raw::{RawExport, count_targets, wipe_lio},
    report::{Sink, Table, median, ms, ratio, spread, tenths_up, verdict},
    sys::{pid_of, rss_kib, sh, timed},
};
use anyhow::{Result, bail};
use carve_guest_tests::{Driver, DriverOptions, Lab};
use csi_controller::lio::{Lio, configfs::ConfigfsLio, saver::SaveHandle};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

mod restored;
mod tables;

use tables::Report;

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
    /// Time controller restarts at every point from this one (and at the largest).
    pub reconcile_from: usize,
    /// Rounds of restarts (LIO intact, then after a wipe) at each point timed; medians are
    /// reported, with their spread.
    pub restarts: usize,
    /// Points measured afterwards on a population restored into a VG of their own
    /// ([`restored`]) rather than made by CreateVolume+ControllerPublish calls, in tables of
    /// their own whose growth and verdicts compare them with each other only.
    pub restored: Vec<usize>,
}

async fn start(lab: &Lab, backend: &'static str) -> Driver {
    Driver::start(
        lab,
        DriverOptions {
            lio_backend: backend,
            // The population is hundreds of volumes published to the one guest node: far past
            // the default attach limit, which is not what this section measures.
            controller_args: vec!["--max-volumes-per-node=0".into()],
            // A first start on a restored population exports thousands of volumes before
            // its Probe answers ready.
            ready_within: Duration::from_hours(2),
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

/// The user's wait before a pod can be scheduled: CreateVolume and ControllerPublish.
const CP: &str = "CreateVolume+ControllerPublish";
/// The probe's timings, in the per-RPC table's order.
const RPCS: &[&str] = &[
    CP,
    "CreateVolume",
    "ControllerPublish",
    "NodeStage",
    "NodeUnstage",
    "ControllerUnpublish",
    "DeleteVolume",
];

/// A probe volume's whole life, `reps` times: create, publish, (stage, unstage,) unpublish,
/// delete, each timed. A probe that fails is cleaned up before the error is returned.
async fn probe(driver: &Driver, tag: &str, reps: usize, stage: bool) -> Result<Samples> {
    let mut s = Samples::new();
    for r in 0..reps {
        let name = format!("bench-probe-{tag}-{r}");
        let (mut v, created) =
            csi::time(csi::create(driver, &name, BYTES, true, Kind::Ext4)).await?;
        let once = probe_once(driver, &mut v, created, stage, &mut s).await;
        if once.is_err() {
            let _ = csi::unstage(driver, &v).await;
            let _ = csi::unpublish(driver, &v.id).await;
            let _ = csi::delete(driver, &v.id).await;
        }
        once?;
    }
    Ok(s)
}

async fn probe_once(
    driver: &Driver,
    v: &mut Vol,
    created: Duration,
    stage: bool,
    s: &mut Samples,
) -> Result<()> {
    s.entry("CreateVolume").or_default().push(created);
    let ((), d) = csi::time(csi::publish(driver, v)).await?;
    s.entry("ControllerPublish").or_default().push(d);
    s.entry(CP).or_default().push(created + d);
    if stage {
        record(s, "NodeStage", csi::stage(driver, v)).await?;
        record(s, "NodeUnstage", csi::unstage(driver, v)).await?;
    }
    record(s, "ControllerUnpublish", csi::unpublish(driver, &v.id)).await?;
    record(s, "DeleteVolume", csi::delete(driver, &v.id)).await?;
    Ok(())
}

/// The median of `name` in `s` (zero when absent).
fn med(s: &Samples, name: &str) -> Duration {
    s.get(name).map_or(Duration::ZERO, |v| median(v))
}

/// Raw floor at the current population: (lvcreate+export+ACL, unexport+lvremove,
/// lvcreate alone, lvcreate without metadata backup, lvs of the VG, lvs of one LV).
fn floor(lab: &Lab, reps: usize) -> Result<[Duration; 6]> {
    let pool = format!("{}/{}", lab.vg, lab.pool);
    let mut s: [Vec<Duration>; 6] = Default::default();
    for r in 0..reps {
        for (i, tuned) in [(0, false), (1, true)] {
            let lv = format!("bscale{r}x{i}");
            let x = RawExport::lab_lv(lab, &lv, "5ca1e", true);
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

/// VmRSS of the (newest) csi-controller process, in MiB.
fn controller_rss() -> Option<f64> {
    pid_of("csi-controller")
        .and_then(rss_kib)
        .map(|kib| kib as f64 / 1024.0)
}

/// The newest csi-controller's `lvm` shells: "count, VmRSS MiB" (separate processes, so not
/// in the controller's own VmRSS).
fn shells_rss() -> String {
    pid_of("csi-controller").map_or("?".into(), |pid| {
        let (count, kib) = crate::sys::children_rss_kib(pid, "lvm");
        format!("{count}, {:.1}", kib as f64 / 1024.0)
    })
}

fn mib(rss: Option<f64>) -> String {
    rss.map_or("?".into(), |m| format!("{m:.1}"))
}

/// Controller restarts at one N, `rounds` times: LIO intact, then after a wipe. Each duration
/// holds one sample per round.
#[derive(Debug, Default)]
struct Recon {
    intact_serving: Vec<Duration>,
    intact_ready: Vec<Duration>,
    wiped: usize,
    wipe: Vec<Duration>,
    serving: Vec<Duration>,
    ready: Vec<Duration>,
    restored: Vec<Duration>,
    /// Stopping the controller before each restart, LIO intact / after the wipe (SIGTERM
    /// until it exits: it writes a save still pending first).
    intact_stop: Vec<Duration>,
    stop: Vec<Duration>,
    /// The restart's steps as the controller logged them, LIO intact / after the wipe.
    intact_steps: Vec<Steps>,
    steps: Vec<Steps>,
    /// After the last round.
    rss: Option<f64>,
}

/// Waits (up to 2 hours) until the `n` population volumes are exported with their ACL; `what`
/// heads the error otherwise.
async fn all_exported(n: usize, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_hours(2);
    while count_targets("bench-scale") != (n, n) {
        if Instant::now() > deadline {
            bail!(
                "{what}: {n} volumes, but (targets, with an ACL) = {:?}",
                count_targets("bench-scale")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// `rounds` times: restarts the controller with LIO intact, then wipes LIO and restarts it
/// again, waiting for every one of the `have` exports and ACLs to be back.
async fn reconcile(driver: &mut Driver, have: usize, rounds: usize) -> Result<Recon> {
    let mut r = Recon::default();
    for _ in 0..rounds.max(1) {
        let intact = restart_timed(driver).await?;
        let (wiped, wipe) = timed(wipe_lio)?;
        let wiped_restart = restart_timed(driver).await?;
        all_exported(have, "reconcile did not restore them").await?;
        r.restored.push(wiped_restart.started.elapsed());
        let (intact_serving, intact_ready) = (intact.serving, intact.ready);
        let (serving, ready) = (wiped_restart.serving, wiped_restart.ready);
        r.intact_stop.push(intact.stop);
        r.stop.push(wiped_restart.stop);
        r.intact_steps.push(intact.steps);
        r.steps.push(wiped_restart.steps);
        r.intact_serving.push(intact_serving);
        r.intact_ready.push(intact_ready);
        r.wiped = wiped;
        r.wipe.push(wipe);
        r.serving.push(serving);
        r.ready.push(ready);
    }
    r.rss = controller_rss();
    Ok(r)
}

/// Runs the plan, printing the tables after every point but the last; returns the final
/// tables. The population is torn down by hand afterwards, also when a step fails (then the
/// tables so far are printed before the error is returned).
pub async fn run(lab: &Lab, plan: &Plan, sink: &Sink) -> Result<Vec<Table>> {
    let mut report = Report::default();
    let mut large = Report::restored();
    let result = measure(lab, plan, sink, &mut report, &mut large).await;
    let torn = teardown(lab, sink);
    let tables = |suffix: &str| {
        let mut t = report.tables(plan, suffix);
        if !plan.restored.is_empty() {
            t.extend(large.tables(plan, suffix));
        }
        t
    };
    match result {
        Ok(()) => {
            torn?;
            Ok(tables(""))
        }
        Err(e) => {
            for t in tables("partial: the section failed") {
                sink.table(&t);
            }
            if let Err(t) = torn {
                sink.text(&format!("scale teardown failed: {t:#}"));
            }
            Err(e)
        }
    }
}

async fn measure(
    lab: &Lab,
    plan: &Plan,
    sink: &Sink,
    report: &mut Report,
    large: &mut Report,
) -> Result<()> {
    let mut driver = start(lab, "configfs").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.rss.push(vec![
        "0 (fresh start)".into(),
        mib(controller_rss()),
        shells_rss(),
        "–".into(),
        "(reported)".into(),
    ]);
    let largest = plan.points.iter().copied().max().unwrap_or(0);
    let mut have = 0;
    for (i, &n) in plan.points.iter().enumerate() {
        let (d, took) = populate(driver, have, n, plan.parallel).await?;
        driver = d;
        let pop = format!(
            "{:.1} ({:.0} ms/vol)",
            took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / (n - have).max(1) as f64
        );
        have = n;
        let s = probe(&driver, &format!("c{n}"), plan.reps, true).await?;
        let f = floor(lab, plan.reps)?;
        report.point(
            n,
            pop,
            s,
            &f,
            (controller_rss(), shells_rss()),
            n == largest,
        );
        if n == largest {
            report.persistence = Some(persistence(plan, have).await?);
        }
        if n >= plan.reconcile_from || n == largest {
            let r = reconcile(&mut driver, have, plan.restarts).await?;
            report.restarts(n, &r);
        }
        let tc = if plan.targetcli_points.contains(&n) {
            drop(driver);
            let tc = start(lab, "targetcli").await;
            let s = probe(&tc, &format!("t{n}"), plan.targetcli_reps, false).await;
            drop(tc);
            driver = start(lab, "configfs").await;
            let s = s?;
            [ms(med(&s, CP)), ms(med(&s, "DeleteVolume"))]
        } else {
            ["–".into(), "–".into()]
        };
        report.main.last_mut().expect("row").extend(tc);
        if i + 1 < plan.points.len() {
            for t in report.tables(plan, &format!("so far, up to N = {n}")) {
                sink.table(&t);
            }
        }
    }
    drop(driver);
    if plan.restored.is_empty() {
        return Ok(());
    }
    // The population made by calls goes first: LIO then holds only the restored one.
    teardown(lab, sink)?;
    let largest = plan.restored.iter().copied().max().unwrap_or(0);
    for &n in &plan.restored {
        restored_point(lab, plan, sink, n, n == largest, large).await?;
        if n != largest {
            for t in large.tables(plan, &format!("so far, up to N = {n}")) {
                sink.table(&t);
            }
        }
    }
    Ok(())
}

/// One point on a restored population ([`restored`]): the controller's first start exports
/// all `n` volumes (timed), then the probe, floor, persistence and restarts as at the other
/// points; the VG is removed afterwards, also when a step failed.
async fn restored_point(
    lab: &Lab,
    plan: &Plan,
    sink: &Sink,
    n: usize,
    largest: bool,
    report: &mut Report,
) -> Result<()> {
    let vg = restored::Restored::create(n, &lab.initiator)?;
    let big = restored::Restored::lab(lab);
    let measured = async {
        let t = Instant::now();
        let mut driver = start(&big, "configfs").await;
        let steps = async {
            all_exported(n, "the first start did not export them").await?;
            let first = t.elapsed();
            let s = probe(&driver, &format!("r{n}"), plan.reps, true).await?;
            let f = floor(&big, plan.reps)?;
            let populate = format!(
                "{}; first start → every export and ACL {:.1} s",
                vg.made,
                first.as_secs_f64()
            );
            report.point(
                n,
                populate,
                s,
                &f,
                (controller_rss(), shells_rss()),
                largest,
            );
            report
                .main
                .last_mut()
                .expect("row")
                .extend(["–".into(), "–".into()]);
            if largest {
                report.persistence = Some(persistence(plan, n).await?);
            }
            let r = reconcile(&mut driver, n, plan.restarts).await?;
            report.restarts(n, &r);
            anyhow::Ok(())
        }
        .await;
        // Kept whatever happened: a failed step is when they are wanted. The node's too: in
        // the lab it shares the guest with the population's LVs.
        sink.keep(
            &format!("controller-restored-{n}.log"),
            &driver.controller_log(),
        );
        sink.keep(&format!("node-restored-{n}.log"), &driver.node_log());
        steps
    }
    .await;
    let removed = vg.remove();
    match (measured, removed) {
        (Ok(()), removed) => removed.map(drop),
        (Err(e), Ok(_)) => Err(e),
        (Err(e), Err(r)) => Err(e.context(format!("and removing the restored VG failed: {r:#}"))),
    }
}

/// Saveconfig with Carve's writer and (if asked) targetcli's, at `have` exports.
async fn persistence(plan: &Plan, have: usize) -> Result<Table> {
    let mut p = Table::new(
        format!("2c. Persistence at N = {have}"),
        &["what", "ms", "notes"],
    );
    let lio: std::sync::Arc<dyn Lio> = std::sync::Arc::new(ConfigfsLio::new(crate::raw::CFG));
    let path = std::path::PathBuf::from("/var/tmp/bench-saveconfig.json");
    let saver = SaveHandle::spawn(lio.clone(), path.clone(), Duration::from_hours(1));
    saver.request();
    let t = Instant::now();
    saver.sync().await?;
    let saved = lio.target_names().await?.len();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    p.row(vec![
        "Carve saveconfig write, whole state (start, SIGHUP)".into(),
        ms(t.elapsed()),
        format!("{saved} targets, {} KiB, atomic, 0600", size / 1024),
    ]);
    // What follows every CreateVolume, Publish, Unpublish and DeleteVolume: one export read
    // again, the target list, the file written.
    if let Some(first) = lio.target_names().await?.first() {
        let target = csi_common::ids::Iqn::parse(first)?;
        saver.request_volume(&target, "");
        let t = Instant::now();
        saver.sync().await?;
        p.row(vec![
            "Carve saveconfig write after one export changed".into(),
            ms(t.elapsed()),
            "what ControllerUnpublish waits for".into(),
        ]);
    }
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
    Ok(p)
}

/// Tears the population (and any probe left) down by hand, the plugins stopped first so the
/// controller's reconciliation cannot restore what is being removed: unpublishing and deleting
/// hundreds of volumes through the driver would take longer than everything measured and
/// measures nothing new (the probes time DeleteVolume at every N).
fn teardown(lab: &Lab, sink: &Sink) -> Result<()> {
    let t = Instant::now();
    let wiped = wipe_lio()?;
    let out = sh("lvs", &["--noheadings", "-o", "lv_name", &lab.vg])?;
    let lvs: Vec<String> = out
        .split_whitespace()
        .filter(|n| n.starts_with("csi-bench-scale-") || n.starts_with("csi-bench-probe-"))
        .map(|n| format!("{}/{n}", lab.vg))
        .collect();
    for chunk in lvs.chunks(200) {
        let mut args = vec!["-y", "-q"];
        args.extend(chunk.iter().map(String::as_str));
        sh("lvremove", &args)?;
    }
    sink.text(&format!(
        "\nscale teardown (by hand: {wiped} targets wiped, {} LVs removed): {:.1} s",
        lvs.len(),
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// One timed restart of the controller.
struct Restart {
    /// Stopping the previous controller.
    stop: Duration,
    /// When the new one was started.
    started: Instant,
    /// From the start until it answered GetPluginInfo (it serves while it reconciles).
    serving: Duration,
    /// From the start until Probe answered ready (reconciliation done).
    ready: Duration,
    /// Its steps, from its log.
    steps: Steps,
}

/// A restart's steps as the controller logs them (milliseconds; `None`: not logged).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Steps {
    /// Seeding the ledger: one LVM report of the VG.
    pub seed: Option<u64>,
    /// Reading LIO's state once (at start-up, beside the seed).
    pub lio_read: Option<u64>,
    /// Restoring what was missing, [`csi_controller::reconcile::RESTORE_PARALLELISM`] at once.
    pub restores: Option<u64>,
}

impl Steps {
    /// The steps in `log`, the controller's log since its start: the fields of its "seeded the
    /// volume-group ledger", "read LIO's state" and "reconciled LIO with LVM" lines (a
    /// controller that reads LIO's state in the pass logs it there, as `lio_read_ms`).
    fn parse(log: &str) -> Self {
        let field = |message: &str, key: &str| -> Option<u64> {
            let line = log.lines().rev().find(|l| l.contains(message))?;
            let rest = line.split(&format!(" {key}=")).nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        Self {
            seed: field("seeded the volume-group ledger", "ms"),
            lio_read: field("read LIO's state", "ms")
                .or_else(|| field("reconciled LIO with LVM", "lio_read_ms")),
            restores: field("reconciled LIO with LVM", "restores_ms"),
        }
    }
}

/// Restarts the controller: stops it (timed apart: it first writes a save still pending),
/// starts it, and times from the start until it answers GetPluginInfo and until Probe
/// answers ready; its steps are read from its log.
async fn restart_timed(driver: &mut Driver) -> Result<Restart> {
    let t = Instant::now();
    driver.stop_controller();
    let stop = t.elapsed();
    let logged = driver.controller_log().len();
    let t = Instant::now();
    let mut client = driver.spawn_controller().await;
    client
        .identity
        .get_plugin_info(csi_proto::v1::GetPluginInfoRequest {})
        .await?;
    let serving = t.elapsed();
    let deadline = Instant::now() + Duration::from_hours(2);
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
    let log = driver.controller_log();
    Ok(Restart {
        stop,
        started: t,
        serving,
        ready,
        steps: Steps::parse(log.get(logged..).unwrap_or_default()),
    })
}
