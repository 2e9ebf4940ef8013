//! LV rows and `lvs` JSON in the captured report format, for unit tests of the LVM layer and
//! of what is built on it (compiled for tests and the `testing` feature only).

use super::LvRow;

/// The volume group of the tests.
pub const VG: &str = "carvevg";
/// Two nodes' initiator IQNs (a Carve node id is its IQN).
pub const NODE1: &str = "iqn.2024-01.dev.carve:node1";
/// The second node.
pub const NODE2: &str = "iqn.2024-01.dev.carve:node2";

/// A row as `lvcreate` leaves it: active, `pool` for a thin LV, with `tags`.
pub fn lv_row(name: &str, size: u64, pool: Option<&str>, tags: &[String]) -> LvRow {
    LvRow::fresh(name, size, pool, tags.to_vec())
}

/// The thin pool `pool` of `size` bytes, zeroing, empty.
pub fn pool_row(size: u64) -> LvRow {
    LvRow {
        name: "pool".into(),
        size,
        attr: "twi-aotz--".into(),
        tags: vec![],
        pool: None,
        origin: None,
        data_percent: Some(0.0),
        metadata_percent: Some(0.0),
    }
}

/// `lvs --reportformat json` of `rows`, as LVM 2.03 prints it.
pub fn lvs_json(rows: &[LvRow]) -> String {
    let lv: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "lv_name": r.name, "lv_size": r.size.to_string(), "lv_attr": r.attr,
                "lv_tags": r.tags.join(","), "pool_lv": r.pool.clone().unwrap_or_default(),
                "origin": r.origin.clone().unwrap_or_default(),
                "data_percent": r.data_percent.map(|p| format!("{p:.2}")).unwrap_or_default(),
                "metadata_percent": r.metadata_percent.map(|p| format!("{p:.2}")).unwrap_or_default(),
            })
        })
        .collect();
    serde_json::json!({"report": [{"lv": lv}]}).to_string()
}

/// The tags of a Carve volume named `name` (no publications).
pub fn carve_tags(name: &str) -> Vec<String> {
    super::tags::VolumeRecord {
        name: name.into(),
        required_bytes: 1,
        capabilities: "mount//SINGLE_NODE_WRITER".into(),
        ..Default::default()
    }
    .creation_tags()
}

/// `dmsetup table` and `dmsetup status` of the thin pool `row`'s `-tpool` device, as the kernel
/// prints them ([`super::pool_status`]): its usage in 10,000 blocks, `skip_block_zeroing`
/// unless `lv_attr` character 8 is `z`, the mode from character 9.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // percentages 0..=100
pub fn dm_pool_lines(row: &LvRow) -> (String, String) {
    let attr = row.attr.as_bytes();
    let features = if attr.get(7) == Some(&b'z') {
        "0"
    } else {
        "1 skip_block_zeroing"
    };
    let sectors = row.size / 512;
    let table = format!("0 {sectors} thin-pool 254:1 254:2 128 0 {features} \n");
    let blocks = |p: Option<f64>| (p.unwrap_or(0.0) * 100.0).round() as u64;
    let mode = match attr.get(8) {
        Some(b'F') => return (table, format!("0 {sectors} thin-pool Fail\n")),
        Some(b'M') => "ro",
        Some(b'D') => "out_of_data_space",
        _ => "rw",
    };
    let status = format!(
        "0 {sectors} thin-pool 1 {}/10000 {}/10000 - {mode} discard_passdown \
         queue_if_no_space - 1024 \n",
        blocks(row.metadata_percent),
        blocks(row.data_percent),
    );
    (table, status)
}
