//! Guest tier, what an operator watches: both plugins' /metrics scraped over HTTP agree with
//! the machine (`vgs`, `lvs`, `iscsiadm -m session`) while a volume is published, staged and
//! written; `carvectl orphans` finds an LV created behind the controller's back and shows the
//! claim recorded in its tags; the claim the provisioner's `--extra-create-metadata` passes
//! lands in the LV's tags and volume_context. Ends with leak accounting.
#![allow(
    clippy::float_cmp,
    reason = "Prometheus samples are f64; the counts and byte figures compared are exact integers"
)]

use carve_guest_tests::{
    Driver, DriverOptions, Lab, assert_no_leaks, checksum, guest_test,
    metrics::{Scrape, free_local_address, scrape},
    run, run_ok,
    volume::{
        MIB, MIB_LEN, Spec, Vol, block, controller_publish, provision, retire, stage_publish,
        teardown,
    },
};
use carvectl::request::{block_capability, capacity_range};
use csi_common::cli::DEFAULT_DRIVER_NAME;
use csi_proto::v1::{
    CreateVolumeRequest, GetCapacityRequest, volume_capability::access_mode::Mode,
};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// The node refreshes its gauges every 30 s: one full period and some slack.
const NODE_GAUGES_WITHIN: Duration = Duration::from_secs(45);
/// The LV created behind the controller's back (a valid Carve volume id, Carve's marker tag).
const ORPHAN: &str = "csi-orphan-made-by-hand";

/// Removes the hand-made LV however the test ends.
struct HandMadeLv(String);

impl Drop for HandMadeLv {
    fn drop(&mut self) {
        let _ = run("lvremove", &["-y", &self.0]);
    }
}

/// The numbers `lvs`/`vgs` print for `what` (`--noheadings`, bytes without suffix).
fn lvm_numbers(program: &str, fields: &str, what: &str) -> Vec<f64> {
    run_ok(
        program,
        &[
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            fields,
            what,
        ],
    )
    .split_whitespace()
    .map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{program} printed {v:?}"))
    })
    .collect()
}

/// Sessions `iscsiadm -m session` lists (exit 21: none).
fn iscsiadm_sessions() -> usize {
    let out = run("iscsiadm", &["-m", "session"]);
    match out.status.code() {
        Some(0) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
        Some(21) => 0,
        _ => panic!("iscsiadm -m session: {out:?}"),
    }
}

/// Why the controller's gauges disagree with `vgs`/`lvs` read right after the scrape, if they do.
fn controller_gauges_disagree(lab: &Lab, metrics: &Scrape) -> Option<String> {
    let vg: &[(&str, &str)] = &[("vg", lab.vg.as_str())];
    let pool: &[(&str, &str)] = &[("vg", lab.vg.as_str()), ("pool", lab.pool.as_str())];
    let gauge = |name: &str, labels: &[(&str, &str)]| {
        metrics
            .value(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing: {metrics:?}"))
    };
    let vgs = lvm_numbers("vgs", "vg_size,vg_free", &lab.vg);
    let pool_lv = format!("{}/{}", lab.vg, lab.pool);
    let lvs = lvm_numbers("lvs", "lv_size,data_percent,metadata_percent", &pool_lv);
    let seen = [
        ("carve_vg_size_bytes", vg, vgs[0]),
        ("carve_vg_free_bytes", vg, vgs[1]),
        ("carve_thin_pool_size_bytes", pool, lvs[0]),
        ("carve_thin_pool_data_percent", pool, lvs[1]),
        ("carve_thin_pool_metadata_percent", pool, lvs[2]),
        ("carve_volumes", vg, 1.0),
        ("carve_published_volumes", vg, 1.0),
    ]
    .map(|(name, labels, machine)| (name, gauge(name, labels), machine));
    // lvs prints percentages with two decimals, the gauges hold what lvs reported.
    let wrong: Vec<String> = seen
        .iter()
        .filter(|(_, gauge, machine)| (gauge - machine).abs() > 0.005)
        .map(|(name, gauge, machine)| format!("{name} {gauge} != {machine}"))
        .collect();
    if lvs[1] <= 0.0 {
        return Some(format!(
            "lvs says data% {} after 16 MiB were written",
            lvs[1]
        ));
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// GetCapacity (its survey refreshes the controller's gauges), then a scrape: until the gauges
/// agree with the machine (the pool commits its metadata within a second of the last write).
async fn check_controller_gauges(driver: &Driver, address: std::net::SocketAddr) {
    let mut controller = driver.controller_rpc();
    let mut why = String::new();
    for _ in 0..10 {
        controller
            .get_capacity(GetCapacityRequest {
                parameters: HashMap::from([("thin".to_string(), "true".to_string())]),
                ..Default::default()
            })
            .await
            .expect("GetCapacity");
        match controller_gauges_disagree(&driver.lab, &scrape(address)) {
            None => return,
            Some(disagreement) => why = disagreement,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("controller gauges never matched vgs/lvs: {why}");
}

/// Scrapes the node until its gauges show one staged volume and the sessions iscsiadm lists
/// (its timer refreshes them every 30 s), then checks them.
async fn check_node_gauges(address: std::net::SocketAddr) {
    let start = Instant::now();
    loop {
        let metrics = scrape(address);
        let sessions = iscsiadm_sessions();
        let staged = metrics.value("carve_node_staged_volumes", &[]);
        let logged_in = metrics.value("carve_node_iscsi_sessions", &[("state", "LOGGED_IN")]);
        if staged == Some(1.0) && logged_in == Some(sessions as f64) {
            assert_eq!(sessions, 1, "one volume staged: one session");
            assert_eq!(metrics.sum("carve_node_iscsi_sessions"), 1.0);
            assert_eq!(metrics.value("carve_node_paths_down", &[]), Some(0.0));
            assert_eq!(
                metrics.value("carve_node_stage_records_unreadable", &[]),
                Some(0.0)
            );
            return;
        }
        assert!(
            start.elapsed() < NODE_GAUGES_WITHIN,
            "node gauges never matched: staged {staged:?}, LOGGED_IN {logged_in:?}, \
             iscsiadm {sessions}: {metrics:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `carvectl --json orphans --pvs <file>` against the controller: (exit code, report).
fn orphans(driver: &Driver, pvs: &Value) -> (Option<i32>, Value) {
    let file = driver.dir.path().join("pvs.json");
    std::fs::write(&file, pvs.to_string()).expect("write PV list");
    let endpoint = format!(
        "unix://{}",
        driver.dir.path().join("controller.sock").display()
    );
    let file = file.display().to_string();
    let out = run(
        "carvectl",
        &["--endpoint", &endpoint, "--json", "orphans", "--pvs", &file],
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "carvectl orphans printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

guest_test!(metrics_match_the_machine_and_orphans_are_found, async {
    let lab = Lab::from_env();
    let (controller_metrics, node_metrics) = (free_local_address(), free_local_address());
    let options = DriverOptions::default()
        .controller(["--metrics-address".into(), controller_metrics.to_string()])
        .node(["--metrics-address".into(), node_metrics.to_string()]);
    let driver = Driver::start(&lab, options).await;
    let capability = block_capability(Mode::SingleNodeWriter);

    // CreateVolume as the external-provisioner sends it with --extra-create-metadata.
    let parameters = HashMap::from([
        ("thin".to_string(), "true".to_string()),
        (
            "csi.storage.k8s.io/pvc/namespace".to_string(),
            "team-a".to_string(),
        ),
        (
            "csi.storage.k8s.io/pvc/name".to_string(),
            "db-0".to_string(),
        ),
        (
            "csi.storage.k8s.io/pv/name".to_string(),
            "pvc-5f1d".to_string(),
        ),
    ]);
    let created = driver
        .controller_rpc()
        .create_volume(CreateVolumeRequest {
            name: "pvc-5f1d".into(),
            capacity_range: capacity_range(32 * MIB, 0),
            volume_capabilities: vec![capability.clone()],
            parameters,
            ..Default::default()
        })
        .await;
    let volume = driver.ok("CreateVolume", created).into_inner().volume;
    let mut vol = Vol::created(&driver, volume.expect("volume"), &capability);
    let id = vol.id.clone();
    assert_eq!(vol.context["pvcNamespace"], "team-a");
    assert_eq!(vol.context["pvcName"], "db-0");
    assert_eq!(vol.context["pvName"], "pvc-5f1d");
    let tags = run_ok(
        "lvs",
        &["--noheadings", "-o", "lv_tags", &format!("{}/{id}", lab.vg)],
    );
    for tag in [
        "carve.pvcns.0=team-a",
        "carve.pvcname.0=db-0",
        "carve.pvname.0=pvc-5f1d",
    ] {
        assert!(tags.contains(tag), "{tag} not in the LV's tags {tags:?}");
    }

    vol.publish = controller_publish(&driver, &vol, &lab.initiator, HashMap::new()).await;
    stage_publish(&driver, &driver.node, &vol).await;
    // Mapped blocks in the thin pool, so data% is not a trivial 0 = 0.
    checksum::write_device(&vol.target, 16 * MIB_LEN, 11);

    check_controller_gauges(&driver, controller_metrics).await;
    check_node_gauges(node_metrics).await;

    // An LV with Carve's marker that no CreateVolume made and no PersistentVolume names.
    let orphan = HandMadeLv(format!("{}/{ORPHAN}", lab.vg));
    run_ok(
        "lvcreate",
        &[
            "-q",
            "-y",
            "-n",
            ORPHAN,
            "-V",
            "8m",
            "-T",
            &format!("{}/{}", lab.vg, lab.pool),
            "--addtag",
            "carve.v=1",
            "--addtag",
            "carve.pvcns.0=team-b",
            "--addtag",
            "carve.pvcname.0=lost-claim",
        ],
    );
    let pvs = json!({"apiVersion": "v1", "kind": "List", "items": [{
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pvc-5f1d"},
        "spec": {"csi": {"driver": DEFAULT_DRIVER_NAME, "volumeHandle": id}},
    }]});
    let (code, report) = orphans(&driver, &pvs);
    assert_eq!(code, Some(4), "something found: exit 4; {report}");
    assert_eq!(report["listed_volumes"], 2, "{report}");
    assert_eq!(report["missing"], json!([]), "{report}");
    let found = report["orphans"].as_array().expect("orphans[]");
    assert_eq!(found.len(), 1, "only the hand-made LV: {report}");
    assert_eq!(found[0]["volume_id"], ORPHAN);
    assert_eq!(found[0]["pvc_namespace"], "team-b");
    assert_eq!(found[0]["pvc_name"], "lost-claim");
    drop(orphan);
    let (code, report) = orphans(&driver, &pvs);
    assert_eq!(code, Some(0), "clean once the LV is gone: {report}");

    teardown(&driver, &vol).await;
    assert_no_leaks(&lab, Some(driver.dir.path()));
});

/// The copies of `vg`'s metadata in LVM's archive (`/etc/lvm/archive/<vg>_<n>-<id>.vg`).
fn archived_copies(vg: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/etc/lvm/archive") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(vg)
                .and_then(|rest| rest.strip_prefix('_'))
                .and_then(|rest| rest.rsplit_once('.'))
                .is_some_and(|(_, extension)| extension == "vg")
        })
        .count()
}

guest_test!(
    lvm_keeps_only_the_newest_metadata_copies_carve_asks_for,
    DriverOptions::default().controller(["--lvm-archive-keep", "4"]),
    async |driver: &Driver| {
        // LVM archives the whole VG metadata before each change and keeps every copy for 30
        // days by its own default; each change lists them all. With --lvm-archive-keep 4 the
        // real LVM must accept Carve's --config, which one change in 16 carries, and trim its
        // archive to the 4 newest copies each time: at most 4 + 15 copies, whatever the
        // history, after 20 changes (5 volumes, each created, published, unpublished and
        // deleted). Untrimmed they alone would leave 20 more copies, and trimmed only at the
        // first change 4 + 19: both fail.
        let vg = driver.lab.vg.clone();
        for i in 0..5 {
            let vol = provision(
                driver,
                Spec::new(&format!("archive-{i}"), 16 * MIB, block()),
            )
            .await;
            retire(driver, &vol, &driver.lab.initiator).await;
        }
        let copies = archived_copies(&vg);
        let most = 4 + 16 - 1; // carve_storage::lvm::ARCHIVE_TRIM_EVERY is 16
        assert!(
            (1..=most).contains(&copies),
            "{copies} archived copies of {vg} after 20 changes with --lvm-archive-keep 4 \
             (at most {most})"
        );
    }
);
