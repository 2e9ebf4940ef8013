//! Quarantine of deleted linear LVs: renamed out of the volumes' namespace at DeleteVolume,
//! zeroed in the background, then removed, so their extents never reach another LV with the
//! previous tenant's bytes in them.
//!
//! Invariants: a quarantined LV is named `carve-wipe-<lv>-<16 hex>` (never a volume id: ids
//! start with `csi-`, so it disappears from every RPC at once) and keeps its Carve tags; only an
//! LV with both that name and Carve's marker tag is ever zeroed or removed here (a foreign LV is
//! never touched); zeroing is `blkdiscard --zeroout` (the `BLKZEROOUT` ioctl: the kernel uses
//! the device's WRITE ZEROES, which unmaps only where the device guarantees that unmapped blocks
//! read back as zeroes, and otherwise writes zero pages; see blkdiscard(8) and
//! Documentation/block/ in the kernel), never a plain discard, whose later reads are undefined;
//! the LV is removed only after the zeroing succeeded; its extents stay allocated (so counted as
//! used by `vg_free`, hence by GetCapacity and the space checks) until then.

use super::{Change, LvRow, LvmCli, argv, tags::VolumeRecord};
use csi_common::{Error, Result, command::Cmd, ids::LvName};
use std::time::Duration;
use tracing::info;

/// The name prefix of a quarantined LV.
pub const PREFIX: &str = "carve-wipe-";

/// The quarantine name of `lv`, unique by `stamp`: the same volume name may be created and
/// deleted again before the first wipe ends (see [`next_stamp`]).
pub fn name_for(lv: &LvName, stamp: u64) -> String {
    format!("{PREFIX}{lv}-{stamp:016x}")
}

/// A stamp no quarantined LV of `lv` among `rows` uses: one past the highest.
pub fn next_stamp(rows: &[LvRow], lv: &LvName) -> u64 {
    let prefix = format!("{PREFIX}{lv}-");
    rows.iter()
        .filter_map(|row| row.name.strip_prefix(&prefix))
        .filter_map(|stamp| u64::from_str_radix(stamp, 16).ok())
        .max()
        .map_or(0, |max| max.saturating_add(1))
}

/// Whether `row` is a quarantined Carve LV: the name shape and Carve's marker tag.
pub fn is_quarantined(row: &LvRow) -> bool {
    valid_name(&row.name) && matches!(VolumeRecord::from_tags(&row.tags), Ok(Some(_)))
}

fn valid_name(name: &str) -> bool {
    name.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.rsplit_once('-').is_some_and(|(lv, stamp)| {
            LvName::parse(lv).is_ok()
                && stamp.len() == 16
                && stamp.bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
}

/// `blkdiscard --zeroout` of the LV's device node.
pub fn blkdiscard_zeroout(vg: &str, name: &str, timeout: Duration) -> Cmd {
    Cmd::new("blkdiscard")
        .args(["--zeroout", "--", &format!("/dev/{vg}/{name}")])
        .timeout(timeout)
}

impl LvmCli {
    /// Renames `lv` into quarantine; `Ok(None)` if it does not exist.
    pub(super) async fn quarantine_lv(&self, lv: &LvName, stamp: u64) -> Result<Option<String>> {
        let new = name_for(lv, stamp);
        let out = self
            .mutate(
                argv::lvrename(&self.vg, lv, &new, self.timeout),
                Change::Renamed {
                    from: lv.as_str(),
                    to: &new,
                },
            )
            .await?;
        if out.success() {
            info!(lv = %lv, quarantine = %new, "quarantined logical volume for wiping");
            return Ok(Some(new));
        }
        if out.stderr.contains("not found") && self.vg_missing(&out).is_none() {
            return Ok(None);
        }
        Err(self.failed(out))
    }

    /// Zeroes and removes the quarantined LV `row` (refused unless [`is_quarantined`]).
    pub(super) async fn wipe_lv(&self, row: &LvRow, timeout: Duration) -> Result<()> {
        if !is_quarantined(row) {
            return Err(Error::failed_precondition(format!(
                "LV {:?} is not a quarantined Carve volume; refusing to wipe it",
                row.name
            )));
        }
        if !row.is_active() {
            let cmd = argv::lvchange_activate(&self.vg, &row.name, self.timeout);
            let out = self
                .mutate(cmd, Change::Activated { lv: &row.name })
                .await?;
            if !out.success() {
                return Err(self.failed(out));
            }
        }
        // Outside the queue: zeroing takes as long as the LV is large.
        let out = self
            .run(blkdiscard_zeroout(&self.vg, &row.name, timeout))
            .await?;
        if !out.success() {
            return Err(self.failed(out));
        }
        let out = self
            .mutate(
                argv::lvremove(&self.vg, &row.name, self.timeout),
                Change::Removed { lv: &row.name },
            )
            .await?;
        if !out.success() && !out.stderr.contains("Failed to find logical volume") {
            return Err(self.failed(out));
        }
        info!(lv = %row.name, bytes = row.size, "wiped and removed quarantined logical volume");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use csi_common::testing::argv as argv_of;

    fn tagged(name: &str) -> LvRow {
        let record = VolumeRecord {
            name: "v".into(),
            ..Default::default()
        };
        LvRow::fresh(name, 64 << 20, None, record.creation_tags())
    }

    #[test]
    fn quarantine_names_leave_the_volume_namespace_and_parse_back() {
        let lv = LvName::for_volume("pvc-1");
        let name = name_for(&lv, 0x1234);
        assert!(name.starts_with("carve-wipe-csi-pvc-1-"), "{name}");
        assert!(name.ends_with("-0000000000001234"), "{name}");
        assert!(LvName::parse(&name).is_err(), "never a volume id");
        assert!(is_quarantined(&tagged(&name)));
    }

    #[test]
    fn stamps_are_one_past_the_highest_of_that_lv() {
        let lv = LvName::for_volume("a");
        let other = LvName::for_volume("b");
        assert_eq!(next_stamp(&[], &lv), 0);
        let rows = [
            tagged(&name_for(&lv, 0)),
            tagged(&name_for(&lv, 7)),
            tagged(&name_for(&other, 100)),
        ];
        assert_eq!(next_stamp(&rows, &lv), 8);
        assert_eq!(next_stamp(&rows, &other), 101);
    }

    #[test]
    fn only_carve_tagged_lvs_of_the_exact_shape_are_wiped() {
        let lv = LvName::for_volume("pvc-1");
        let good = name_for(&lv, 1);
        assert!(!is_quarantined(&LvRow::fresh(&good, 1, None, vec![])));
        for bad in [
            "carve-wipe-".to_string(),
            format!("carve-wipe-{lv}"),
            format!("carve-wipe-{lv}-123"),
            format!("carve-wipe-{lv}-000000000000000g"),
            format!("carve-wipe-home-{}", "0".repeat(16)),
            format!("{lv}"),
            "root".to_string(),
        ] {
            assert!(!is_quarantined(&tagged(&bad)), "{bad}");
        }
    }

    #[test]
    fn argv_names_every_operand_after_double_dash() {
        let lv = LvName::for_volume("a");
        let t = Duration::from_secs(5);
        assert_eq!(
            argv_of(&argv::lvrename("vg0", &lv, "carve-wipe-x", t))[1..],
            ["--yes", "--", "vg0", lv.as_str(), "carve-wipe-x"]
        );
        assert_eq!(
            argv_of(&blkdiscard_zeroout("vg0", "carve-wipe-x", t)),
            ["blkdiscard", "--zeroout", "--", "/dev/vg0/carve-wipe-x"]
        );
        assert_eq!(
            argv_of(&argv::lvremove("vg0", "carve-wipe-x", t)),
            ["lvremove", "--yes", "--", "vg0/carve-wipe-x"]
        );
    }
}
