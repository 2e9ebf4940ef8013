//! `carve-bench`: Carve's benchmark, run INSIDE the lab guest (`hack/bench`, or
//! `hack/vm/run --release -- carve-bench ARGS`). It drives the real `csi-controller` and
//! `csi-node` over their unix sockets, does the same work with the raw tools (the floor) and
//! prints markdown tables as each section finishes (also to `out/bench.md` of the run and, with
//! `--share`, `/mnt/share/bench.md`). Times under TCG emulation mean little: read the ratios.
//! Everything it creates is deleted; it ends with the guest harness's leak check.

mod big_delete;
mod concurrency;
mod csi;
mod fio;
mod floor;
mod footprint;
mod raw;
mod report;
mod scale;
mod stage_burst;
mod sys;

use anyhow::Result;
use carve_guest_tests::{Driver, DriverOptions, Lab};
use clap::Parser;
use report::Sink;
use std::{path::PathBuf, sync::Arc, time::Duration};

/// Carve's in-guest benchmark.
#[derive(Debug, Parser)]
#[command(name = "carve-bench")]
struct Args {
    /// Sections to run, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "footprint,floor,fio,concurrency,stage-burst,big-delete,scale"
    )]
    sections: Vec<String>,
    /// The commit measured, as `hack/bench` passes it (`<short hash>` or `<short hash>-dirty`;
    /// the guest has no git).
    #[arg(long, default_value = "unknown (not passed: run through hack/bench)")]
    commit: String,
    /// Repetitions of each floor/Carve lifecycle and of each scale probe (medians are reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Volume counts for the scale section (2,000 is opt-in: `--scale 10,100,500,2000`).
    #[arg(long, value_delimiter = ',', default_value = "10,100,500")]
    scale: Vec<usize>,
    /// Scale points from which controller restarts (reconciliation) are timed, LIO intact and
    /// after a wipe; the largest point is always timed.
    #[arg(long, default_value_t = 500)]
    reconcile_from: usize,
    /// Rounds of controller restarts (LIO intact, then after a wipe) at each scale point timed
    /// (medians reported, with their spread).
    #[arg(long, default_value_t = 3)]
    restarts: usize,
    /// Scale points measured after the others on a population restored into a volume group
    /// of its own in one vgcfgrestore, not made by CreateVolume+ControllerPublish calls (LVM's
    /// cost per command grows with the VG: thousands of calls take hours under TCG); issue
    /// #17's complete run uses `--restored 500,2000`. Empty by default.
    #[arg(long, value_delimiter = ',')]
    restored: Vec<usize>,
    /// Volume counts at which the targetcli backend is measured too (a subset of --scale).
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    targetcli_scale: Vec<usize>,
    /// Repetitions of each targetcli probe.
    #[arg(long, default_value_t = 1)]
    targetcli_reps: usize,
    /// Skip `targetcli saveconfig` at the largest scale point (about 100 s at 500 under TCG).
    #[arg(long)]
    no_targetcli_save: bool,
    /// Parallel calls while populating the scale section.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Burst sizes of the concurrency section.
    #[arg(long, value_delimiter = ',', default_value = "50,100")]
    concurrency: Vec<usize>,
    /// Parallel NodeStage calls of the stage-burst section.
    #[arg(long, default_value_t = 20)]
    stage_burst: usize,
    /// Size in GiB of the linear volume the big-delete section deletes.
    #[arg(long, default_value_t = 10)]
    big_delete_gib: u64,
    /// Seconds per fio job.
    #[arg(long, default_value_t = 10)]
    fio_seconds: u64,
    /// fio rounds (each path's median is reported; the order of Carve and the floors alternates
    /// between rounds).
    #[arg(long, default_value_t = 3)]
    fio_rounds: usize,
    /// fio rounds run first on every path and dropped (a warm-up).
    #[arg(long, default_value_t = 1)]
    fio_warmup: usize,
    /// Idle window of the footprint section, in seconds.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Also write the report to /mnt/share/bench.md (hack/vm/run --share DIR).
    #[arg(long)]
    share: bool,
}

/// Every section, in the order they run.
const SECTIONS: &[&str] = &[
    "footprint",
    "floor",
    "fio",
    "concurrency",
    "stage-burst",
    "big-delete",
    "scale",
];

/// Records a failed section and prints it at once (a later timeout must not hide it).
fn fail(sink: &Sink, failed: &mut Vec<String>, message: String) {
    sink.text(&format!("\nSECTION FAILED: {message}"));
    failed.push(message);
}

fn machine() -> String {
    let first = |p: &str, a: &[&str]| {
        sys::sh(p, a).map_or_else(
            |e| format!("? ({e})"),
            |s| s.lines().next().unwrap_or("").trim().to_string(),
        )
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_string))
        .unwrap_or_default();
    format!(
        "kernel {}, {} vCPU ({cpu}), {}; {}; {}; {}; carve-bench {} build",
        first("uname", &["-r"]),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        first("sh", &["-c", "grep MemTotal /proc/meminfo"]),
        first("lvm", &["version"]),
        first("fio", &["--version"]),
        first("iscsiadm", &["--version"]),
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let lab = Lab::from_env();
    let mut files = Vec::new();
    if std::path::Path::new("/mnt/carve/run/out").is_dir() {
        files.push(PathBuf::from("/mnt/carve/run/out/bench.md"));
    }
    if args.share {
        files.push(PathBuf::from("/mnt/share/bench.md"));
    }
    let sink = Sink::new(files);
    sink.text(&format!(
        "## carve-bench\n\ncommit {}\n\n{}\n\nargs: {args:?}",
        args.commit,
        machine()
    ));
    if std::env::var("CARVE_TEST_LOG").is_err() {
        sink.text(
            "note: CARVE_TEST_LOG unset, so the driver logs at debug level (hack/bench sets info)",
        );
    }
    let mut failed = Vec::new();
    if let Some(bad) = args
        .sections
        .iter()
        .find(|s| !SECTIONS.contains(&s.as_str()))
    {
        anyhow::bail!(
            "unknown section {bad:?}; the sections are {}",
            SECTIONS.join(",")
        );
    }
    let want = |s: &str| args.sections.iter().any(|x| x == s);
    let needs_driver = ["footprint", "floor", "fio", "concurrency", "stage-burst"]
        .iter()
        .any(|s| want(s));
    if needs_driver {
        let driver = Arc::new(Driver::start(&lab, DriverOptions::default()).await);
        if want("footprint") {
            tokio::time::sleep(Duration::from_secs(2)).await;
            sink.table(&footprint::idle(Duration::from_secs(args.idle_seconds)).await);
        }
        if want("floor") {
            match floor::run(&driver, args.reps).await {
                Ok(tables) => tables.iter().for_each(|t| sink.table(t)),
                Err(e) => fail(&sink, &mut failed, format!("floor: {e:#}")),
            }
        }
        if want("fio") {
            match fio::run(
                &driver,
                args.fio_seconds,
                args.fio_rounds.max(1),
                args.fio_warmup,
            )
            .await
            {
                Ok(t) => sink.table(&t),
                Err(e) => fail(&sink, &mut failed, format!("fio: {e:#}")),
            }
        }
        if want("concurrency") {
            match concurrency::run(Arc::clone(&driver), &args.concurrency).await {
                Ok(t) => sink.table(&t),
                Err(e) => fail(&sink, &mut failed, format!("concurrency: {e:#}")),
            }
            if want("footprint") {
                sink.table(&footprint::idle(Duration::from_secs(args.idle_seconds)).await);
            }
        }
        if want("stage-burst") {
            match stage_burst::run(Arc::clone(&driver), args.stage_burst, args.reps.max(1)).await {
                Ok(t) => sink.table(&t),
                Err(e) => fail(&sink, &mut failed, format!("stage-burst: {e:#}")),
            }
        }
        sink.keep("driver-controller.log", &driver.controller_log());
        sink.keep("driver-node.log", &driver.node_log());
        if !failed.is_empty() {
            sink.text(
                &Arc::try_unwrap(driver)
                    .map(|d| d.logs())
                    .unwrap_or_default(),
            );
        }
    }
    if want("big-delete") {
        match big_delete::run(&lab, args.big_delete_gib).await {
            Ok(t) => sink.table(&t),
            Err(e) => fail(&sink, &mut failed, format!("big-delete: {e:#}")),
        }
    }
    if want("scale") {
        let plan = scale::Plan {
            points: args.scale.clone(),
            targetcli_points: args.targetcli_scale.clone(),
            reps: args.reps,
            targetcli_reps: args.targetcli_reps.max(1),
            parallel: args.parallel,
            targetcli_save: !args.no_targetcli_save,
            reconcile_from: args.reconcile_from,
            restarts: args.restarts,
            restored: args.restored.clone(),
        };
        match scale::run(&lab, &plan, &sink).await {
            Ok(tables) => tables.iter().for_each(|t| sink.table(t)),
            Err(e) => fail(&sink, &mut failed, format!("scale: {e:#}")),
        }
    }
    let leaks = carve_guest_tests::leaks::leaks(&lab, None);
    if leaks.is_empty() {
        sink.text("\nleak check: nothing left (LVs, targets, backstores, sessions, node records)");
    } else {
        failed.push(format!("leaks:\n  {}", leaks.join("\n  ")));
    }
    if failed.is_empty() {
        sink.text("carve-bench: done");
        Ok(())
    } else {
        sink.text(&format!("carve-bench: FAILED\n{}", failed.join("\n")));
        std::process::exit(1);
    }
}
