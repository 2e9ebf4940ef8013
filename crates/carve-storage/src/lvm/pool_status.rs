//! A thin pool's usage, faults and zeroing read from device-mapper rather than LVM: the
//! kernel's `thin-pool` target reports them in its status and table lines (`dmsetup status` and
//! `dmsetup table` of the pool's `-tpool` layer, or of the pool itself while no thin LV uses
//! it; Linux
//! `Documentation/admin-guide/device-mapper/thin-provisioning.rst`, *Status* and *Pool
//! table line*). Reading them takes no VG lock and parses no VG metadata, whereas
//! `lvs vg/pool` does both, at a cost that grows with every LV in the VG, and every LVM change
//! waits for it (docs/benchmarks.md, section 2).
//!
//! Invariants: [`refresh`] rewrites only what the kernel knows now in the ledger's pool row
//! (name, size and tags stay LVM's): `lv_attr` character 9 as LVM derives it from the same
//! status (LVM 2.03.16 `lib/metadata/lv.c` `lv_attr_dup_with_info_and_seg_status`: `F`
//! failed, `D` out of data space, `M` metadata read-only), character 8 `z` exactly while the
//! table line zeroes (the kernel is what zeroes a newly provisioned block, and `lvchange
//! --zero` reloads the table, so a pool an operator stops or starts zeroing by hand is seen at
//! the next reading), `data_percent` and `metadata_percent` from the block counts as LVM computes
//! them (`dm_make_percent`). Anything else (no such device, another target, a line it cannot
//! parse) is `None`, and the caller reads the pool from LVM instead.

use super::LvRow;
use csi_common::command::{Cmd, CommandRunner};
use std::time::Duration;

/// The device-mapper name LVM gives the layer `layer` of `vg/lv`: each `-` in the VG and LV
/// names doubled, the parts joined by `-` (libdevmapper `dm_build_dm_name`), e.g.
/// `("vg-a", "pool", "tpool")` → `vg--a-pool-tpool`.
pub fn dm_name(vg: &str, lv: &str, layer: &str) -> String {
    format!("{}-{layer}", lv_dm_name(vg, lv))
}

/// The device-mapper name of `vg/lv` itself (no layer), mangled as in [`dm_name`].
fn lv_dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// The device-mapper names a thin pool `pool` of `vg` can carry its `thin-pool` target under,
/// in the order tried: the `-tpool` layer LVM adds once thin LVs use the pool, then the pool's
/// own name (a pool no thin LV uses yet is activated without that layer).
pub fn dm_names(vg: &str, pool: &str) -> [String; 2] {
    [dm_name(vg, pool, "tpool"), lv_dm_name(vg, pool)]
}

/// `dmsetup status` of the device-mapper device `name`, limited to `timeout`.
pub fn status_cmd(name: &str, timeout: Duration) -> Cmd {
    dmsetup("status", name, timeout)
}

/// `dmsetup table` of the same device.
pub fn table_cmd(name: &str, timeout: Duration) -> Cmd {
    dmsetup("table", name, timeout)
}

fn dmsetup(what: &str, name: &str, timeout: Duration) -> Cmd {
    Cmd::new("dmsetup")
        .args([what, "--", name])
        .timeout(timeout)
}

/// Reads the thin pool `pool` of `vg` from device-mapper through `runner` (each command
/// limited to `timeout`): under each of [`dm_names`] in turn, `dmsetup status` then
/// `dmsetup table`, parsed by [`parse`]. `None` when no name shows a thin-pool target (the
/// pool is not active, `dmsetup` cannot be run): the caller reads LVM instead.
pub async fn read(
    runner: &dyn CommandRunner,
    vg: &str,
    pool: &str,
    timeout: Duration,
) -> Option<PoolStatus> {
    let output = |cmd: Cmd| async move {
        match runner.run(&cmd).await {
            Ok(out) if out.success() => Some(out.stdout),
            _ => None,
        }
    };
    for name in dm_names(vg, pool) {
        let Some(status) = output(status_cmd(&name, timeout)).await else {
            continue;
        };
        let table = output(table_cmd(&name, timeout)).await?;
        if let Some(parsed) = parse(&table, &status) {
            return Some(parsed);
        }
    }
    None
}

/// What the kernel's `thin-pool` target says of a pool now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolStatus {
    /// `lv_attr` character 9 as LVM would print it from this status (`F`, `D`, `M`, or `-`).
    pub health: u8,
    /// Whether the table line zeroes newly provisioned blocks (no `skip_block_zeroing`).
    pub zeroes: bool,
    /// Data blocks used, in percent (`None` when the pool failed: LVM prints none either).
    pub data_percent: Option<f64>,
    /// Metadata blocks used, in percent (the same).
    pub metadata_percent: Option<f64>,
}

/// Parses one-line `dmsetup table` and `dmsetup status` outputs of a thin-pool device:
/// `<start> <len> thin-pool <meta dev> <data dev> <block size> <low water> <#features>
/// [<feature>]*` and `<start> <len> thin-pool <transaction id> <used>/<total metadata blocks>
/// <used>/<total data blocks> <held root> ro|rw|out_of_data_space ...` (or `Fail`, or
/// `Error`). `None` for any other shape, a second segment or another target.
pub fn parse(table: &str, status: &str) -> Option<PoolStatus> {
    let zeroes = table_zeroes(single_line(table)?)?;
    let mut fields = single_line(status)?.split_ascii_whitespace();
    fields.next()?.parse::<u64>().ok()?;
    fields.next()?.parse::<u64>().ok()?;
    if fields.next()? != "thin-pool" {
        return None;
    }
    let first = fields.next()?;
    if first == "Fail" || first == "Error" {
        return Some(PoolStatus {
            health: b'F',
            zeroes,
            data_percent: None,
            metadata_percent: None,
        });
    }
    first.parse::<u64>().ok()?;
    let metadata_percent = percent(fields.next()?)?;
    let data_percent = percent(fields.next()?)?;
    fields.next()?; // held metadata root
    let health = match fields.next()? {
        "rw" => b'-',
        "ro" => b'M',
        "out_of_data_space" => b'D',
        _ => return None,
    };
    Some(PoolStatus {
        health,
        zeroes,
        data_percent: Some(data_percent),
        metadata_percent: Some(metadata_percent),
    })
}

/// The one line of a one-segment device's output.
fn single_line(out: &str) -> Option<&str> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let line = lines.next()?;
    lines.next().is_none().then_some(line)
}

/// Whether a thin-pool table line zeroes new blocks.
fn table_zeroes(line: &str) -> Option<bool> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    if fields.get(2) != Some(&"thin-pool") {
        return None;
    }
    let count: usize = fields.get(7)?.parse().ok()?;
    let features = fields.get(8..8 + count)?;
    Some(!features.contains(&"skip_block_zeroing"))
}

/// `used/total` as a percentage, as `dm_make_percent` computes it (exactly 100 only when full).
#[allow(clippy::cast_precision_loss)] // block counts are far below 2^52
fn percent(field: &str) -> Option<f64> {
    let (used, total) = field.split_once('/')?;
    let (used, total): (u64, u64) = (used.parse().ok()?, total.parse().ok()?);
    if total == 0 || used > total {
        return None;
    }
    Some(used as f64 * 100.0 / total as f64)
}

/// The ledger's pool row `row` with what `status` says now (see the module's invariants).
pub fn refresh(row: &LvRow, status: &PoolStatus) -> LvRow {
    let mut attr: Vec<u8> = row.attr.bytes().collect();
    if attr.len() >= 9 {
        attr[7] = if status.zeroes { b'z' } else { b'-' };
        attr[8] = status.health;
    }
    LvRow {
        attr: String::from_utf8_lossy(&attr).into_owned(),
        data_percent: status.data_percent,
        metadata_percent: status.metadata_percent,
        ..row.clone()
    }
}

/// The row of the thin pool `name` as device-mapper alone shows it (no size, no tags): what
/// [`super::space::pool_fault`] and [`super::space::require_zeroing`] read.
pub fn row(name: &str, status: &PoolStatus) -> LvRow {
    let bare = LvRow {
        name: name.to_string(),
        size: 0,
        attr: "twi-a-t---".into(),
        tags: Vec::new(),
        pool: None,
        origin: None,
        data_percent: None,
        metadata_percent: None,
    };
    refresh(&bare, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::space;

    // In the kernel's format (thin-provisioning.rst) for a 1 GiB pool; the guest cases in
    // tests/guest/tests/integrity.rs read the real lines (a full pool, zeroing turned off).
    const TABLE: &str = "0 2097152 thin-pool 254:1 254:2 128 0 0 \n";
    const STATUS: &str = "0 2097152 thin-pool 3 211/4608 1312/16384 - rw discard_passdown queue_if_no_space - 1024 \n";

    fn pool_row() -> LvRow {
        LvRow {
            name: "pool".into(),
            size: 1 << 30,
            attr: "twi-aotz--".into(),
            tags: vec![],
            pool: None,
            origin: None,
            data_percent: Some(1.0),
            metadata_percent: Some(1.0),
        }
    }

    #[test]
    fn dm_names_double_the_hyphens_of_both_names() {
        assert_eq!(dm_name("carve", "pool", "tpool"), "carve-pool-tpool");
        assert_eq!(
            dm_name("vg-a", "thin-pool", "tpool"),
            "vg--a-thin--pool-tpool"
        );
        assert_eq!(dm_names("vg-a", "p"), ["vg--a-p-tpool", "vg--a-p"]);
        let cmd = status_cmd("vg--a-p-tpool", Duration::from_secs(5));
        assert_eq!(cmd.program(), "dmsetup");
        let args: Vec<&str> = cmd.arg_values().collect();
        assert_eq!(args, ["status", "--", "vg--a-p-tpool"]);
    }

    #[test]
    fn a_healthy_pool_gives_lvm_s_percentages() {
        let s = parse(TABLE, STATUS).expect("parsed");
        assert_eq!(s.health, b'-');
        assert!(s.zeroes);
        assert_eq!(s.data_percent, Some(1312.0 * 100.0 / 16384.0));
        assert_eq!(s.metadata_percent, Some(211.0 * 100.0 / 4608.0));
        let row = refresh(&pool_row(), &s);
        assert_eq!(row.attr, "twi-aotz--");
        assert_eq!(row.size, 1 << 30);
        assert!(space::pool_condition(&row).is_none());
        assert!(space::zeroes_new_blocks(&row));
    }

    #[test]
    fn faults_read_as_lvm_s_attr_character_nine() {
        for (mode, fault) in [
            ("ro", "metadata read-only"),
            ("out_of_data_space", "out of data space"),
        ] {
            let status = STATUS.replace(" rw ", &format!(" {mode} "));
            let row = refresh(&pool_row(), &parse(TABLE, &status).expect(mode));
            assert_eq!(space::pool_fault(&row), Some(fault), "{mode}");
        }
        for failed in ["0 2097152 thin-pool Fail", "0 2097152 thin-pool Error"] {
            let row = refresh(&pool_row(), &parse(TABLE, failed).expect(failed));
            assert_eq!(space::pool_fault(&row), Some("failed"), "{failed}");
            assert_eq!(row.data_percent, None);
        }
    }

    #[test]
    fn a_full_pool_is_full() {
        let status = STATUS.replace("1312/16384", "16384/16384");
        let row = refresh(&pool_row(), &parse(TABLE, &status).expect("parsed"));
        assert!(space::pool_condition(&row).expect("full").contains("full"));
        assert_eq!(space::pool_free(&row), 0);
    }

    #[test]
    fn zeroing_is_what_the_kernel_s_table_says() {
        let skip = "0 2097152 thin-pool 254:1 254:2 128 0 1 skip_block_zeroing";
        let s = parse(skip, STATUS).expect("parsed");
        assert!(!s.zeroes);
        assert!(!space::zeroes_new_blocks(&refresh(&pool_row(), &s)));
        let two = "0 2097152 thin-pool 254:1 254:2 128 0 2 ignore_discard skip_block_zeroing";
        assert!(!parse(two, STATUS).expect("parsed").zeroes);
        // Zeroing turned back on by hand (`lvchange --zero y` reloads the table).
        let mut unzeroed = pool_row();
        unzeroed.attr = "twi-aot---".into();
        let row = refresh(&unzeroed, &parse(TABLE, STATUS).expect("parsed"));
        assert!(space::zeroes_new_blocks(&row));
        assert_eq!(row.attr, "twi-aotz--");
    }

    #[test]
    fn anything_else_is_none_so_lvm_is_read_instead() {
        for (table, status) in [
            ("", STATUS),
            (TABLE, ""),
            ("0 2097152 linear 254:1 0", STATUS),
            (TABLE, "0 2097152 linear"),
            (TABLE, "0 2097152 thin-pool 3 211/4608"),
            (TABLE, "0 2097152 thin-pool 3 211/0 1/16 - rw"),
            (TABLE, "0 2097152 thin-pool 3 9/4 1/16 - rw"),
            (TABLE, "0 2097152 thin-pool 3 1/4 1/16 - weird"),
            (TABLE, &format!("{STATUS}{STATUS}")),
            (
                "0 2097152 thin-pool 254:1 254:2 128 0 2 skip_block_zeroing",
                STATUS,
            ),
            ("0 2097152 thin-pool 254:1 254:2 128 0 x", STATUS),
        ] {
            assert_eq!(parse(table, status), None, "{table:?} / {status:?}");
        }
    }

    #[tokio::test]
    async fn a_pool_no_thin_lv_uses_yet_is_read_under_its_own_name() {
        use csi_common::command::{Expectation, ScriptedRunner};
        let t = Duration::from_secs(5);
        let runner = ScriptedRunner::new();
        runner.expect(
            Expectation::of(&status_cmd("vg-pool-tpool", t))
                .fails(1, "Device does not exist.\nCommand failed.\n"),
        );
        runner.expect(Expectation::of(&status_cmd("vg-pool", t)).stdout(STATUS));
        runner.expect(Expectation::of(&table_cmd("vg-pool", t)).stdout(TABLE));
        let read = read(&runner, "vg", "pool", t).await.expect("read");
        assert_eq!(read, parse(TABLE, STATUS).unwrap());
        // Neither name: None, so LVM is read.
        for name in dm_names("vg", "pool") {
            runner.expect(
                Expectation::of(&status_cmd(&name, t))
                    .fails(1, "Device does not exist.\nCommand failed.\n"),
            );
        }
        assert_eq!(super::read(&runner, "vg", "pool", t).await, None);
        runner.finish();
    }
}
