//! Section 1: each Carve RPC against the raw commands doing the same work (the floor), one
//! thin 64 MiB ext4 volume at a time, floor and Carve alternating so drift hits both alike.

use crate::{
    csi::{self, Kind, Samples, record},
    raw::RawExport,
    report::{Table, median, ms, ratio, spread, verdict},
    sys::{sh, timed},
};
use anyhow::Result;
use carve_guest_tests::Driver;
use std::time::Duration;

const SIZE: &str = "64M";
const BYTES: i64 = 64 << 20;

fn floor_once(driver: &Driver, i: usize, s: &mut Samples) -> Result<()> {
    let lab = &driver.lab;
    let lv = format!("bfloor{i}");
    let serial = format!("b0000000-0000-4000-8000-{i:012}");
    let x = RawExport::lab_lv(lab, &lv, &serial, true);
    let staging = driver.staging_path(&lv);
    let target = driver.target_path(&lv);
    std::fs::create_dir_all(&target)?;
    let pool = format!("{}/{}", lab.vg, lab.pool);
    let mut step = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        let ((), d) = timed(f)?;
        s.entry(name).or_default().push(d);
        Ok(())
    };
    step("lvcreate", &mut || {
        sh(
            "lvcreate",
            &["-y", "-q", "-V", SIZE, "-T", &pool, "-n", &lv],
        )
        .map(drop)
    })?;
    // Not in the floor: the same lvcreate with what Carve can add to it (the record tags of a
    // volume like the bench's, and the --config one change in 16 carries), on an LV of its own.
    let twin = format!("{lv}c");
    let config = format!(
        "backup{{retain_min={} retain_days=0}}",
        csi_controller::host::DEFAULT_LVM_ARCHIVE_KEEP
    );
    let tags = csi_controller::lvm::tags::VolumeRecord {
        name: format!("bench-floor-{i}"),
        required_bytes: BYTES as u64,
        capabilities: "SINGLE_NODE_WRITER:mount:ext4".into(),
        ..Default::default()
    }
    .creation_tags();
    step(LVCREATE_AS_CARVE, &mut || {
        let mut argv = vec!["--config", &config, "-y", "-q", "-V", SIZE, "-T", &pool];
        argv.extend(["-n", &twin]);
        for tag in &tags {
            argv.extend(["--addtag", tag]);
        }
        sh("lvcreate", &argv).map(drop)
    })?;
    sh(
        "lvremove",
        &[
            "-y",
            "-q",
            "--config",
            &config,
            &format!("{}/{twin}", lab.vg),
        ],
    )?;
    step("configfs export", &mut || x.export())?;
    step("configfs ACL", &mut || x.add_acl(&lab.initiator))?;
    let full = format!("{}/{lv}", lab.vg);
    let tag = format!("carve.pub=rw:{}", lab.initiator);
    step("lvchange --addtag", &mut || {
        sh("lvchange", &["--addtag", &tag, &full]).map(drop)
    })?;
    step("iscsiadm node record", &mut || x.node_record())?;
    step("iscsiadm login", &mut || x.login())?;
    step("udev wait (by-path link)", &mut || x.wait_disk())?;
    let dev = x.by_path().display().to_string();
    step("mkfs.ext4", &mut || {
        sh("mkfs.ext4", &["-q", "-E", "nodiscard", "-m", "0", &dev]).map(drop)
    })?;
    let st = staging.display().to_string();
    let tg = target.display().to_string();
    step("mount", &mut || sh("mount", &[&dev, &st]).map(drop))?;
    step("bind mount", &mut || {
        sh("mount", &["--bind", &st, &tg]).map(drop)
    })?;
    step("umount bind", &mut || sh("umount", &[&tg]).map(drop))?;
    step("umount", &mut || sh("umount", &[&st]).map(drop))?;
    step("iscsiadm logout + delete record", &mut || x.logout())?;
    step("lvchange --deltag", &mut || {
        sh("lvchange", &["--deltag", &tag, &full]).map(drop)
    })?;
    step("configfs remove ACL", &mut || x.remove_acl(&lab.initiator))?;
    step("configfs unexport", &mut || x.unexport())?;
    step("lvremove", &mut || {
        sh("lvremove", &["-y", "-q", &full]).map(drop)
    })?;
    let _ = std::fs::remove_dir(&target);
    Ok(())
}

async fn carve_once(driver: &Driver, i: usize, s: &mut Samples) -> Result<()> {
    let name = format!("bench-floor-{i}");
    let create = csi::create(driver, &name, BYTES, true, Kind::Ext4);
    let mut vol = record(s, "CreateVolume", create).await?;
    record(s, "ControllerPublish", csi::publish(driver, &mut vol)).await?;
    record(s, "NodeStage", csi::stage(driver, &vol)).await?;
    record(s, "NodePublish", csi::node_publish(driver, &vol)).await?;
    record(s, "NodeUnpublish", csi::node_unpublish(driver, &vol)).await?;
    record(s, "NodeUnstage", csi::unstage(driver, &vol)).await?;
    record(s, "ControllerUnpublish", csi::unpublish(driver, &vol.id)).await?;
    record(s, "DeleteVolume", csi::delete(driver, &vol.id)).await?;
    Ok(())
}

/// The floor's `lvcreate` with the record tags CreateVolume adds and the `--config` that one
/// LVM change in 16 carries (`carve_storage::lvm::ARCHIVE_TRIM_EVERY`): an upper bound of
/// LVM's share of Carve's extra.
const LVCREATE_AS_CARVE: &str = "lvcreate with Carve's --config and record tags";

/// Floor steps that also keep the durable record Carve keeps (an LVM tag), per RPC.
const RECORD: &[(&str, &str)] = &[
    ("ControllerPublish", "lvchange --addtag"),
    ("ControllerUnpublish", "lvchange --deltag"),
];

/// (Carve RPC, the floor steps that do its work, target ratio)
const PAIRS: &[(&str, &[&str], Option<f64>)] = &[
    ("CreateVolume", &["lvcreate", "configfs export"], Some(1.5)),
    ("ControllerPublish", &["configfs ACL"], Some(1.5)),
    (
        "NodeStage",
        &[
            "iscsiadm node record",
            "iscsiadm login",
            "udev wait (by-path link)",
            "mkfs.ext4",
            "mount",
        ],
        Some(1.2),
    ),
    ("NodePublish", &["bind mount"], Some(1.5)),
    ("NodeUnpublish", &["umount bind"], None),
    (
        "NodeUnstage",
        &["umount", "iscsiadm logout + delete record"],
        None,
    ),
    ("ControllerUnpublish", &["configfs remove ACL"], None),
    ("DeleteVolume", &["configfs unexport", "lvremove"], None),
];

/// RPCs whose sum a user waits for before a pod can start, against the floor of their steps:
/// (name, Carve RPCs, floor steps, target ratio).
const COMPOSITES: &[(&str, &[&str], &[&str], f64)] = &[(
    "CreateVolume+ControllerPublish",
    &["CreateVolume", "ControllerPublish"],
    &["lvcreate", "configfs export", "configfs ACL"],
    1.5,
)];

/// Per-repetition sums of `names` in `s`.
fn sums(s: &Samples, names: &[&str], reps: usize) -> Vec<Duration> {
    (0..reps)
        .map(|r| names.iter().map(|n| s[n][r]).sum())
        .collect()
}

/// Runs `reps` alternating floor/Carve lifecycles and returns the tables.
pub async fn run(driver: &Driver, reps: usize) -> Result<Vec<Table>> {
    // One untimed round first: the first lvcreate, login and mkfs of a boot pay cold caches.
    let mut warm = Samples::new();
    floor_once(driver, 99, &mut warm)?;
    carve_once(driver, 99, &mut warm).await?;
    let mut s = Samples::new();
    for i in 0..reps {
        if i % 2 == 0 {
            floor_once(driver, i, &mut s)?;
            carve_once(driver, i, &mut s).await?;
        } else {
            carve_once(driver, i, &mut s).await?;
            floor_once(driver, i, &mut s)?;
        }
    }
    let mut t = Table::new(
        format!("1. Floor vs Carve per RPC (thin 64 MiB ext4, median of {reps})"),
        &[
            "Carve RPC",
            "floor ms",
            "Carve ms",
            "ratio",
            "target",
            "met",
            "floor + LVM tag ms",
            "ratio to that",
            "floor min / med / max",
            "Carve min / med / max",
        ],
    );
    let (mut floor_total, mut carve_total) = (Duration::ZERO, Duration::ZERO);
    for (rpc, steps, target) in PAIRS {
        // Median of the per-repetition sums, so the composite floor is one real sequence.
        let sums: Vec<Duration> = (0..reps)
            .map(|r| steps.iter().map(|st| s[st][r]).sum())
            .collect();
        let floor = median(&sums);
        let carve = median(&s[rpc]);
        floor_total += floor;
        carve_total += carve;
        let r = carve.as_secs_f64() / floor.as_secs_f64().max(1e-9);
        t.row(vec![
            rpc.to_string(),
            ms(floor),
            ms(carve),
            ratio(carve, floor),
            target.map_or("–".into(), |x| format!("≤{x}×")),
            target.map_or("(reported)".into(), |x| verdict(r, x)),
        ]);
        let row = t.rows_mut().last_mut().expect("row");
        match RECORD.iter().find(|(name, _)| name == rpc) {
            Some((_, st)) => {
                let with: Vec<Duration> = (0..reps).map(|r| sums[r] + s[st][r]).collect();
                let with = median(&with);
                row.extend([ms(with), ratio(carve, with)]);
            }
            None => row.extend(["–".to_string(), "–".to_string()]),
        }
        row.extend([spread(&sums), spread(&s[rpc])]);
    }
    for (name, rpcs, steps, target) in COMPOSITES {
        let floors = sums(&s, steps, reps);
        let carves = sums(&s, rpcs, reps);
        let (floor, carve) = (median(&floors), median(&carves));
        let r = carve.as_secs_f64() / floor.as_secs_f64().max(1e-9);
        t.row(vec![
            name.to_string(),
            ms(floor),
            ms(carve),
            ratio(carve, floor),
            format!("≤{target}×"),
            verdict(r, *target),
            "–".into(),
            "–".into(),
            spread(&floors),
            spread(&carves),
        ]);
    }
    t.row(vec![
        "whole lifecycle".into(),
        ms(floor_total),
        ms(carve_total),
        ratio(carve_total, floor_total),
        "–".into(),
        "(reported)".into(),
    ]);
    let mut steps = Table::new(
        format!("1b. Floor steps (median of {reps})"),
        &["raw step", "ms"],
    );
    for (_, list, _) in PAIRS {
        for st in *list {
            steps.row(vec![st.to_string(), ms(median(&s[st]))]);
        }
    }
    for st in RECORD.iter().map(|(_, st)| *st).chain([LVCREATE_AS_CARVE]) {
        steps.row(vec![format!("{st} (not in the floor)"), ms(median(&s[st]))]);
    }
    Ok(vec![t, steps])
}
