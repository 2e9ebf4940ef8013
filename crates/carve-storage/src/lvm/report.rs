//! Parsing of `lvs`/`vgs --reportformat json --units b --nosuffix` output into typed rows.
//!
//! Invariants: sizes are exact byte counts (the argv asks for `--units b --nosuffix`); a field
//! that is missing or malformed is an internal error naming the field, never a panic; empty
//! strings (no pool, no origin) become `None`.

use csi_common::{Error, Result};
use serde::Deserialize;

/// One logical volume as `lvs` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LvRow {
    /// LV name.
    pub name: String,
    /// Size in bytes (virtual size for thin LVs).
    pub size: u64,
    /// The 10-character attribute string (`Vwi-a-tz--`).
    pub attr: String,
    /// LV tags.
    pub tags: Vec<String>,
    /// The thin pool of a thin LV.
    pub pool: Option<String>,
    /// The origin of a snapshot.
    pub origin: Option<String>,
    /// Data usage of a thin pool or thin LV, in percent.
    pub data_percent: Option<f64>,
    /// Metadata usage of a thin pool, in percent (`None` for other LVs).
    pub metadata_percent: Option<f64>,
}

impl LvRow {
    /// The row LVM reports for an LV just created active: linear (`-wi-a-----`), or thin in
    /// `pool` (`Vwi-a-tz--`, 0% used), with no origin.
    pub fn fresh(name: &str, size: u64, pool: Option<&str>, tags: Vec<String>) -> Self {
        Self {
            name: name.to_string(),
            size,
            attr: if pool.is_some() {
                "Vwi-a-tz--"
            } else {
                "-wi-a-----"
            }
            .into(),
            tags,
            pool: pool.map(str::to_string),
            origin: None,
            data_percent: pool.map(|_| 0.0),
            metadata_percent: None,
        }
    }

    /// Whether the LV is active (attr position 5).
    pub fn is_active(&self) -> bool {
        self.attr.as_bytes().get(4) == Some(&b'a')
    }

    /// Whether the LV is a thin pool (attr type `t`).
    pub fn is_thin_pool(&self) -> bool {
        self.attr.starts_with('t')
    }
}

/// A volume group as `vgs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgRow {
    /// VG name.
    pub name: String,
    /// Total size in bytes.
    pub size: u64,
    /// Free bytes.
    pub free: u64,
    /// Extent size in bytes.
    pub extent_size: u64,
}

#[derive(Deserialize)]
struct Report<T> {
    report: Vec<Section<T>>,
}

#[derive(Deserialize)]
struct Section<T> {
    #[serde(default = "Vec::new", alias = "lv", alias = "vg")]
    rows: Vec<T>,
}

#[derive(Deserialize)]
struct RawLv {
    lv_name: String,
    lv_size: String,
    lv_attr: String,
    #[serde(default)]
    lv_tags: String,
    #[serde(default)]
    pool_lv: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    data_percent: String,
    #[serde(default)]
    metadata_percent: String,
}

#[derive(Deserialize)]
#[allow(clippy::struct_field_names)] // the report's own column names
struct RawVg {
    vg_name: String,
    vg_size: String,
    vg_free: String,
    vg_extent_size: String,
}

fn bytes(field: &str, value: &str) -> Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| Error::internal(format!("lvm report: {field} {value:?} is not a byte count")))
}

fn optional(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

/// The rows of a JSON report of `what`, each made by `row`.
fn rows<T: for<'de> Deserialize<'de>, R>(
    json: &str,
    what: &str,
    row: fn(T) -> Result<R>,
) -> Result<Vec<R>> {
    let report: Report<T> = serde_json::from_str(json)
        .map_err(|e| Error::internal(format!("cannot parse the {what} JSON report: {e}")))?;
    report
        .report
        .into_iter()
        .flat_map(|s| s.rows)
        .map(row)
        .collect()
}

/// Parses `lvs --reportformat json` output.
pub fn parse_lvs(json: &str) -> Result<Vec<LvRow>> {
    rows(json, "lvs", lv_row)
}

/// Parses `vgs --reportformat json` output.
pub fn parse_vgs(json: &str) -> Result<Vec<VgRow>> {
    rows(json, "vgs", vg_row)
}

fn lv_row(raw: RawLv) -> Result<LvRow> {
    Ok(LvRow {
        size: bytes("lv_size", &raw.lv_size)?,
        name: raw.lv_name,
        attr: raw.lv_attr,
        tags: raw
            .lv_tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        pool: optional(raw.pool_lv),
        origin: optional(raw.origin),
        data_percent: raw.data_percent.trim().parse::<f64>().ok(),
        metadata_percent: raw.metadata_percent.trim().parse::<f64>().ok(),
    })
}

fn vg_row(raw: RawVg) -> Result<VgRow> {
    Ok(VgRow {
        size: bytes("vg_size", &raw.vg_size)?,
        free: bytes("vg_free", &raw.vg_free)?,
        extent_size: bytes("vg_extent_size", &raw.vg_extent_size)?,
        name: raw.vg_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/controller"
    );

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    #[test]
    fn parses_captured_lvs_with_tags_pools_and_sizes() {
        let rows = parse_lvs(&fixture("lvs-populated.stdout")).unwrap();
        let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["csi-big-89ab", "csi-lin-0123", "csi-thin-4567", "pool"]
        );
        let thin = &rows[2];
        assert_eq!(thin.size, 1 << 30);
        assert_eq!(thin.pool.as_deref(), Some("pool"));
        assert!(thin.is_active() && !thin.is_thin_pool());
        assert!(
            thin.tags
                .contains(&"carve.pub=rw:iqn.2024-01.dev.carve:node1".to_string())
        );
        assert_eq!(thin.tags.len(), 4);
        let linear = &rows[1];
        assert_eq!((linear.size, linear.pool.as_deref()), (67_108_864, None));
        let fresh = LvRow::fresh(&linear.name, linear.size, None, linear.tags.clone());
        assert_eq!(
            linear, &fresh,
            "a fresh linear LV as LvRow::fresh builds it"
        );
        assert!(linear.tags.contains(&"carve.name=pvc#3b#20x".to_string()));
        assert!(
            linear.tags.iter().any(|t| t.len() > 1000),
            "a 1100-character tag was accepted"
        );
        assert!(rows[3].is_thin_pool());
        assert_eq!(rows[3].data_percent, Some(0.0));
    }

    #[test]
    fn empty_selection_and_missing_vg_reports_are_empty() {
        assert!(
            parse_lvs(&fixture("lvs-select-none.stdout"))
                .unwrap()
                .is_empty()
        );
        assert!(
            parse_lvs(&fixture("lvs-missing-vg.stdout"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(parse_lvs(&fixture("lvs-select.stdout")).unwrap().len(), 1);
        assert!(
            parse_vgs(&fixture("vgs-missing.stdout"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn parses_captured_vgs() {
        let vg = &parse_vgs(&fixture("vgs.stdout")).unwrap()[0];
        assert_eq!(vg.name, "carvevg");
        assert_eq!(vg.size, 17_175_674_880);
        assert_eq!(vg.free, 8_568_963_072);
        assert_eq!(vg.extent_size, 4 << 20);
    }

    #[test]
    fn survey_rows_carry_the_vg_columns_and_one_lv_reports_alone() {
        // capture-lvs-one.sh: 100 tagged thin LVs and the pool, `-o <lv fields>,<vg fields>`.
        let json = fixture("lvs-survey.stdout");
        let rows = parse_lvs(&json).unwrap();
        assert_eq!(rows.len(), 101);
        assert!(rows.iter().any(super::LvRow::is_thin_pool));
        let captured = rows.iter().find(|r| r.name == "csi-t50").unwrap();
        // What CreateVolume answers without reading the LV back is what LVM reports for it.
        let fresh = LvRow::fresh("csi-t50", 16 << 20, Some("pool"), captured.tags.clone());
        assert_eq!(captured, &fresh);
        let vgs = parse_vgs(&json).unwrap();
        assert_eq!(vgs.len(), 101, "every row carries the VG columns");
        assert_eq!(
            (vgs[0].name.as_str(), vgs[0].extent_size),
            ("carvevg", 4 << 20)
        );
        let one = parse_lvs(&fixture("lvs-one.stdout")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "csi-t50");
        assert!(fixture("lvs-one-missing.stderr").contains("Failed to find logical volume"));
        assert_eq!(fixture("lvs-one-missing.rc").trim(), "5");
    }

    #[test]
    fn thin_pool_metadata_usage_is_read_and_absent_elsewhere() {
        // Hand-written in lvs' JSON shape (the captures above predate the metadata_percent
        // column): LVM reports both percentages with two decimals, blank for non-pool LVs.
        let json = r#"{"report":[{"lv":[
            {"lv_name":"pool","lv_size":"1073741824","lv_attr":"twi-aotz--","lv_tags":"",
             "pool_lv":"","origin":"","data_percent":"42.50","metadata_percent":"10.25"},
            {"lv_name":"csi-a","lv_size":"67108864","lv_attr":"-wi-a-----","lv_tags":"",
             "pool_lv":"","origin":"","data_percent":"","metadata_percent":""}]}]}"#;
        let rows = parse_lvs(json).unwrap();
        assert_eq!(
            (rows[0].data_percent, rows[0].metadata_percent),
            (Some(42.5), Some(10.25))
        );
        assert_eq!(
            (rows[1].data_percent, rows[1].metadata_percent),
            (None, None)
        );
        let old = parse_lvs(&fixture("lvs-populated.stdout")).unwrap();
        assert!(old.iter().all(|r| r.metadata_percent.is_none()));
    }

    #[test]
    fn malformed_reports_are_internal_errors() {
        assert!(parse_lvs("not json").is_err());
        let bad =
            r#"{"report":[{"lv":[{"lv_name":"x","lv_size":"12.5","lv_attr":"-wi-a-----"}]}]}"#;
        let err = parse_lvs(bad).unwrap_err();
        assert!(err.message().contains("lv_size"), "{err}");
    }
}
