//! Storage gauges: the volume group's size and free bytes, each thin pool's size and data and
//! metadata usage, and how many volumes, snapshots and published volumes the VG holds.
//!
//! Invariants: the figures come only from a [`Survey`] the controller already read or keeps
//! (a resync: GetCapacity, the resync timer, SIGHUP; or the ledger after each mutation, see
//! [`crate::lvm::ledger`]): nothing here runs a command; a survey that failed leaves
//! the last figures in place and only `carve_lvm_survey_timestamp_seconds` tells their age; a
//! thin pool without a reported percentage (inactive) gets no usage gauge rather than a 0.

use crate::lvm::{
    Survey,
    tags::{MARKER, PUBLISHED, snapshot::SOURCE_VOLUME},
};
use std::time::{SystemTime, UNIX_EPOCH};

/// One gauge value: metric name, labels (besides `vg`) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Metric name.
    pub name: &'static str,
    /// The thin pool, for the per-pool gauges.
    pub pool: Option<String>,
    /// The value.
    pub value: f64,
}

impl Reading {
    fn vg(name: &'static str, value: f64) -> Self {
        Self {
            name,
            pool: None,
            value,
        }
    }

    fn pool(name: &'static str, pool: &str, value: f64) -> Self {
        Self {
            name,
            pool: Some(pool.to_string()),
            value,
        }
    }
}

/// The gauges a survey gives (pure: see [`record`] for publishing them).
pub fn readings(survey: &Survey) -> Vec<Reading> {
    let mut out = vec![
        Reading::vg("carve_vg_size_bytes", survey.vg.size as f64),
        Reading::vg("carve_vg_free_bytes", survey.vg.free as f64),
    ];
    let carve = |lv: &&crate::lvm::LvRow| lv.tags.iter().any(|t| t == MARKER);
    let is_snapshot =
        |lv: &&crate::lvm::LvRow| lv.tags.iter().any(|t| t.starts_with(SOURCE_VOLUME));
    let volumes = survey
        .lvs
        .iter()
        .filter(carve)
        .filter(|lv| !is_snapshot(lv));
    let published = volumes
        .clone()
        .filter(|lv| lv.tags.iter().any(|t| t.starts_with(PUBLISHED)))
        .count();
    out.push(Reading::vg("carve_volumes", volumes.count() as f64));
    out.push(Reading::vg(
        "carve_snapshots",
        survey.lvs.iter().filter(carve).filter(is_snapshot).count() as f64,
    ));
    out.push(Reading::vg("carve_published_volumes", published as f64));
    for pool in survey.lvs.iter().filter(|lv| lv.is_thin_pool()) {
        out.push(Reading::pool(
            "carve_thin_pool_size_bytes",
            &pool.name,
            pool.size as f64,
        ));
        if let Some(data) = pool.data_percent {
            out.push(Reading::pool(
                "carve_thin_pool_data_percent",
                &pool.name,
                data,
            ));
        }
        if let Some(meta) = pool.metadata_percent {
            out.push(Reading::pool(
                "carve_thin_pool_metadata_percent",
                &pool.name,
                meta,
            ));
        }
    }
    out
}

/// Publishes the gauges of `survey`, an LVM report read just now, and its time (a no-op
/// without an installed metrics recorder).
pub fn record(survey: &Survey) {
    record_values(survey);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!("carve_lvm_survey_timestamp_seconds", "vg" => survey.vg.name.clone()).set(now);
}

/// Publishes the gauges of `survey`, the ledger after a change the controller made: the
/// figures, not the survey time (the thin pool's usage in it is as old as the last report).
pub fn record_values(survey: &Survey) {
    let vg = survey.vg.name.clone();
    for reading in readings(survey) {
        match reading.pool {
            Some(pool) => {
                metrics::gauge!(reading.name, "vg" => vg.clone(), "pool" => pool)
                    .set(reading.value);
            }
            None => metrics::gauge!(reading.name, "vg" => vg.clone()).set(reading.value),
        }
    }
}

/// Describes the gauges to the metrics exporter (their HELP lines).
pub fn describe() {
    use metrics::{Unit, describe_gauge};
    describe_gauge!(
        "carve_vg_size_bytes",
        Unit::Bytes,
        "Size of the volume group"
    );
    describe_gauge!(
        "carve_vg_free_bytes",
        Unit::Bytes,
        "Unallocated bytes of the volume group (what linear volumes draw on)"
    );
    describe_gauge!(
        "carve_thin_pool_size_bytes",
        Unit::Bytes,
        "Data size of a thin pool"
    );
    describe_gauge!(
        "carve_thin_pool_data_percent",
        Unit::Percent,
        "Data usage of a thin pool (lvs data_percent): writes fail when it reaches 100"
    );
    describe_gauge!(
        "carve_thin_pool_metadata_percent",
        Unit::Percent,
        "Metadata usage of a thin pool (lvs metadata_percent): the pool fails when it reaches 100"
    );
    describe_gauge!(
        "carve_volumes",
        "Carve volumes (LVs with Carve's tags, snapshots excluded)"
    );
    describe_gauge!("carve_snapshots", "Carve snapshots (thin snapshot LVs)");
    describe_gauge!(
        "carve_published_volumes",
        "Carve volumes published to at least one node"
    );
    describe_gauge!(
        "carve_lvm_survey_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful LVM survey the gauges come from"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::{LvRow, VgRow, report::parse_lvs};

    fn value(readings: &[Reading], name: &str, pool: Option<&str>) -> Option<f64> {
        readings
            .iter()
            .find(|r| r.name == name && r.pool.as_deref() == pool)
            .map(|r| r.value)
    }

    /// Asserts each `(gauge, pool, value)`: `None` is no reading at all.
    fn assert_values(readings: &[Reading], want: &[(&str, Option<&str>, Option<f64>)]) {
        for &(name, pool, value_wanted) in want {
            assert_eq!(value(readings, name, pool), value_wanted, "{name} {pool:?}");
        }
    }

    fn vg() -> VgRow {
        VgRow {
            name: "carvevg".into(),
            size: 17_175_674_880,
            free: 8_568_963_072,
            extent_size: 4 << 20,
        }
    }

    #[test]
    fn captured_report_gives_vg_pool_and_volume_gauges() {
        // lvs-data-services: a linear volume, a published thin volume, its snapshot, a volume
        // restored from it, and the pool (captured in the guest, current tag format).
        let lvs = parse_lvs(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/controller/lvs-data-services.stdout"
            ))
            .unwrap(),
        )
        .unwrap();
        let survey = Survey {
            vg: vg(),
            lvs,
            generation: 0,
        };
        let r = readings(&survey);
        assert_values(
            &r,
            &[
                ("carve_vg_size_bytes", None, Some(17_175_674_880.0)),
                ("carve_vg_free_bytes", None, Some(8_568_963_072.0)),
                ("carve_volumes", None, Some(3.0)),
                ("carve_snapshots", None, Some(1.0)),
                ("carve_published_volumes", None, Some(1.0)),
                (
                    "carve_thin_pool_size_bytes",
                    Some("pool"),
                    Some(8_589_934_592.0),
                ),
                ("carve_thin_pool_data_percent", Some("pool"), Some(0.1)),
                // The capture predates the metadata column: no gauge rather than a false 0.
                ("carve_thin_pool_metadata_percent", Some("pool"), None),
            ],
        );
    }

    #[test]
    fn per_pool_usage_and_snapshots() {
        let mut pool = LvRow::fresh("pool", 8 << 30, None, vec![]);
        pool.attr = "twi-aotz--".into();
        pool.data_percent = Some(81.5);
        pool.metadata_percent = Some(12.75);
        let mut inactive = pool.clone();
        inactive.name = "cold".into();
        inactive.data_percent = None;
        inactive.metadata_percent = None;
        let snap = LvRow::fresh(
            "snap-1",
            1 << 30,
            Some("pool"),
            vec![MARKER.into(), format!("{SOURCE_VOLUME}x")],
        );
        let survey = Survey {
            vg: vg(),
            lvs: vec![pool, inactive, snap],
            generation: 0,
        };
        let r = readings(&survey);
        assert_values(
            &r,
            &[
                ("carve_thin_pool_data_percent", Some("pool"), Some(81.5)),
                (
                    "carve_thin_pool_metadata_percent",
                    Some("pool"),
                    Some(12.75),
                ),
                (
                    "carve_thin_pool_size_bytes",
                    Some("cold"),
                    Some((8u64 << 30) as f64),
                ),
                ("carve_thin_pool_data_percent", Some("cold"), None),
                ("carve_snapshots", None, Some(1.0)),
                ("carve_volumes", None, Some(0.0)),
            ],
        );
    }
}
