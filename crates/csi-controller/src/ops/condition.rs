//! The storage side of a volume's condition (VolumeCondition in ControllerGetVolume and
//! ListVolumes): the health of its LV and, for a thin volume, of its thin pool.
//!
//! Invariants: read from `lv_attr` as lvs(8) documents it (character 5 state, character 9
//! health) and the pool's `data_percent`; a thin volume whose pool is full, failed or has
//! read-only metadata is abnormal even though its LV and export are fine, because writes to it
//! fail; the first reason found is reported, storage before export.

use super::volume::Volume;
use crate::lvm::{LvRow, space};

/// Why the volume's storage cannot serve reads and writes, if it cannot; `pool` is its thin
/// pool's row (`None` for a linear volume, or a thin one whose pool is missing).
pub fn storage_abnormal(volume: &Volume, pool: Option<&LvRow>) -> Option<String> {
    match volume.lv.attr.as_bytes().get(8) {
        Some(b'p') => {
            return Some(format!(
                "logical volume {} is partial: a physical volume it uses is missing",
                volume.id
            ));
        }
        Some(b'F') => return Some(format!("logical volume {} has failed", volume.id)),
        Some(b'X') => {
            return Some(format!(
                "logical volume {} is in an unknown state",
                volume.id
            ));
        }
        _ => {}
    }
    let pool_name = volume.lv.pool.as_deref()?;
    match pool {
        None => Some(format!("thin pool {pool_name} is missing")),
        Some(row) => space::pool_condition(row),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{carve_tags, lv_row, pool_row};

    fn volume(pool: Option<&str>, attr: &str) -> Volume {
        let mut row = lv_row("csi-v-1", 8 << 20, pool, &carve_tags("v"));
        row.attr = attr.into();
        Volume::from_row(row).unwrap().unwrap()
    }

    #[test]
    fn healthy_linear_and_thin_volumes_are_normal() {
        assert_eq!(storage_abnormal(&volume(None, "-wi-a-----"), None), None);
        let pool = pool_row(1 << 30);
        assert_eq!(
            storage_abnormal(&volume(Some("pool"), "Vwi-a-tz--"), Some(&pool)),
            None
        );
    }

    #[test]
    fn each_storage_fault_is_named() {
        let thin = volume(Some("pool"), "Vwi-a-tz--");
        let mut full = pool_row(1 << 30);
        full.data_percent = Some(100.0);
        let mut read_only = pool_row(1 << 30);
        read_only.attr = "twi-aotzM-".into();
        for (v, pool, expected) in [
            (volume(None, "-wi-a---p-"), None, "partial"),
            (volume(None, "-wi-a---F-"), None, "failed"),
            (volume(None, "-wi-a---X-"), None, "unknown"),
            (thin.clone(), None, "thin pool pool is missing"),
            (thin.clone(), Some(&full), "full"),
            (thin, Some(&read_only), "metadata read-only"),
        ] {
            let why = storage_abnormal(&v, pool).unwrap_or_default();
            assert!(why.contains(expected), "{expected:?} in {why:?}");
        }
    }
}
