//! Section 7: DeleteVolume of a large linear volume (10 GiB by default). Carve quarantines a
//! deleted linear LV (a rename, so the RPC answers at once) and its wiper zeroes it
//! (`blkdiscard --zeroout`) and removes it in the background: the table gives the RPC's latency
//! and the time until the VG's free space is back, against the raw tools doing the same.
//! The lab VG (16 GiB, 8 of them the thin pool) may not have room: then it is extended for the
//! measurement by a sparse loop-file PV, reduced and removed afterwards (also on failure).

use crate::{
    csi::{self, Kind},
    report::{Table, ms, ratio},
    sys::{sh, timed},
};
use anyhow::{Context, Result, bail};
use carve_guest_tests::{Driver, DriverOptions, Lab};
use std::time::{Duration, Instant};

/// Where the extra PV's file goes: the lab's scratch filesystem (hack/vm/guest/carve-lab-up).
const PV_FILE: &str = "/var/lib/carve-lab/bench-big-delete-pv.img";
/// Room kept free beside the volume (LVM's rounding, metadata).
const MARGIN: u64 = 256 << 20;
/// How long the wiper may take to give the space back.
const WIPE_LIMIT: Duration = Duration::from_hours(1);

/// Free bytes of the VG.
fn vg_free(vg: &str) -> Result<u64> {
    let out = sh(
        "vgs",
        &[
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "vg_free",
            vg,
        ],
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("vg_free {out:?}"))
}

/// LVs of the VG whose name starts with `prefix`.
fn lvs_named(vg: &str, prefix: &str) -> Result<Vec<String>> {
    let out = sh("lvs", &["--noheadings", "-o", "lv_name", vg])?;
    Ok(out
        .split_whitespace()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect())
}

/// A loop-file PV added to the VG for the measurement.
struct Extension {
    device: String,
    gib: u64,
}

fn extend(vg: &str, gib: u64) -> Result<Extension> {
    sh("truncate", &["-s", &format!("{gib}G"), PV_FILE])?;
    let device = match sh("losetup", &["-f", "--show", PV_FILE]) {
        Ok(d) => d.trim().to_string(),
        Err(e) => {
            let _ = std::fs::remove_file(PV_FILE);
            return Err(e);
        }
    };
    let ext = Extension { device, gib };
    if let Err(e) = sh("pvcreate", &["-y", "-q", &ext.device])
        .and_then(|_| sh("vgextend", &["-q", vg, &ext.device]))
    {
        let _ = remove(vg, &ext);
        return Err(e);
    }
    Ok(ext)
}

/// vgreduce, pvremove, losetup -d, rm: each tried, the first error returned.
fn remove(vg: &str, ext: &Extension) -> Result<()> {
    let steps = [
        sh("vgreduce", &["-q", vg, &ext.device]).map(drop),
        sh("pvremove", &["-y", "-q", &ext.device]).map(drop),
        sh("losetup", &["-d", &ext.device]).map(drop),
        std::fs::remove_file(PV_FILE).context("rm the PV file"),
    ];
    steps.into_iter().collect()
}

/// Runs the section for a `gib` GiB linear volume.
pub async fn run(lab: &Lab, gib: u64) -> Result<Table> {
    let bytes = gib << 30;
    let free = vg_free(&lab.vg)?;
    let ext = if free < bytes + MARGIN {
        // Whole GiB, enough for the volume and the margin.
        Some(extend(&lab.vg, (bytes + MARGIN - free).div_ceil(1 << 30))?)
    } else {
        None
    };
    let mut t = Table::new(
        format!("7. DeleteVolume of a {gib} GiB linear volume (raw block)"),
        &["what", "ms", "vs floor", "notes"],
    );
    t.note(match &ext {
        Some(e) => format!(
            "The VG had {:.2} GiB free: it was extended for this section by a {} GiB sparse \
             loop-file PV ({}), removed afterwards.",
            free as f64 / (1u64 << 30) as f64,
            e.gib,
            e.device
        ),
        None => format!(
            "The VG had {:.2} GiB free: no extension needed.",
            free as f64 / (1u64 << 30) as f64
        ),
    });
    let result = measure(lab, bytes, gib, &mut t).await;
    let removed = ext.map_or(Ok(()), |e| remove(&lab.vg, &e));
    result?;
    removed?;
    Ok(t)
}

async fn measure(lab: &Lab, bytes: u64, gib: u64, t: &mut Table) -> Result<()> {
    let free = vg_free(&lab.vg)?;
    let driver = Driver::start(lab, DriverOptions::default()).await;
    let name = "bench-big-delete";
    let (vol, create) = csi::time(csi::create(
        &driver,
        name,
        bytes.cast_signed(),
        false,
        Kind::Block,
    ))
    .await?;
    let lv = format!("csi-{name}");
    let start = Instant::now();
    let deleted = csi::delete(&driver, &vol.id).await;
    let rpc = start.elapsed();
    deleted?;
    // Back: the quarantined LV is gone (zeroed, then removed) and the VG's free space with it.
    let quarantine = format!("{}{lv}-", csi_controller::lvm::quarantine::PREFIX);
    loop {
        if vg_free(&lab.vg)? >= free && lvs_named(&lab.vg, &quarantine)?.is_empty() {
            break;
        }
        if start.elapsed() > WIPE_LIMIT {
            bail!(
                "the VG's free space is not back {} s after DeleteVolume",
                WIPE_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = start.elapsed();
    drop(driver);
    // The floor, with the driver stopped: the same size, by hand.
    let raw = "bbigdelete";
    let full = format!("{}/{raw}", lab.vg);
    let size = format!("{gib}G");
    let lvcreate = || sh("lvcreate", &["-y", "-q", "-L", &size, "-n", raw, &lab.vg]).map(drop);
    let lvremove = || sh("lvremove", &["-y", "-q", &full]).map(drop);
    let ((), floor_create) = timed(lvcreate)?;
    let ((), floor_remove) = timed(lvremove)?;
    timed(lvcreate)?;
    let dev = format!("/dev/{full}");
    let zeroed = timed(|| sh("blkdiscard", &["--zeroout", &dev]).map(drop));
    let ((), floor_zero) = match zeroed {
        Ok(z) => z,
        Err(e) => {
            let _ = lvremove();
            return Err(e);
        }
    };
    let ((), floor_zero_remove) = timed(lvremove)?;
    let floor_wipe = floor_zero + floor_zero_remove;
    t.row(vec![
        format!("CreateVolume (linear {gib} GiB)"),
        ms(create),
        ratio(create, floor_create),
        format!("floor: lvcreate -L {gib}G, {} ms", ms(floor_create)),
    ]);
    t.row(vec![
        "DeleteVolume RPC (quarantine: lvrename)".into(),
        ms(rpc),
        ratio(rpc, floor_remove),
        format!("floor: lvremove without zeroing, {} ms", ms(floor_remove)),
    ]);
    t.row(vec![
        "DeleteVolume → VG free space back (wiper: zero, then lvremove)".into(),
        ms(back),
        ratio(back, floor_wipe),
        format!(
            "floor: blkdiscard --zeroout {} ms + lvremove {} ms",
            ms(floor_zero),
            ms(floor_zero_remove)
        ),
    ]);
    Ok(())
}
