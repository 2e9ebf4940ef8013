//! Argument vectors of every LVM command the controller runs.
//!
//! Invariants: argv only (no shell); every VG/LV operand comes after `--`, so a name can never
//! be read as an option; names are Carve-derived (`[a-z0-9-]`) or operator-configured; sizes
//! are exact bytes (`<n>b`); reports use `--units b --nosuffix` and JSON.

use csi_common::{command::Cmd, ids::LvName};
use std::{fmt::Display, time::Duration};

/// The `lvs` columns [`super::report::parse_lvs`] reads.
pub const LVS_FIELDS: &str =
    "lv_name,lv_size,lv_attr,lv_tags,pool_lv,origin,data_percent,metadata_percent";
/// The `vgs` columns [`super::report::parse_vgs`] reads.
pub const VGS_FIELDS: &str = "vg_name,vg_size,vg_free,vg_extent_size";

fn report(program: &str, fields: &str, timeout: Duration) -> Cmd {
    Cmd::new(program)
        .args([
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            fields,
        ])
        .timeout(timeout)
}

/// `vgs` of one volume group.
pub fn vgs(vg: &str, timeout: Duration) -> Cmd {
    report("vgs", VGS_FIELDS, timeout).args(["--", vg])
}

/// `lvs` of every LV in `vg`.
pub fn lvs(vg: &str, timeout: Duration) -> Cmd {
    report("lvs", LVS_FIELDS, timeout).args(["--", vg])
}

/// `lvs` of every LV in `vg`, each row also carrying the VG's size, free space and extent size:
/// everything CreateVolume needs to know before `lvcreate`, in one process.
pub fn lvs_survey(vg: &str, timeout: Duration) -> Cmd {
    report("lvs", &format!("{LVS_FIELDS},{VGS_FIELDS}"), timeout).args(["--", vg])
}

/// `lvs` of one LV, named `vg/lv` (LVM reports that LV alone; a selection (`-S`) would build
/// the row of every LV in the VG to filter them). A missing LV fails with exit code 5 and
/// `Failed to find logical volume`.
pub fn lvs_one(vg: &str, lv: &LvName, timeout: Duration) -> Cmd {
    report("lvs", LVS_FIELDS, timeout).args(["--", &format!("{vg}/{lv}")])
}

/// Where a new LV's space comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// Linear LV from the VG's free extents.
    Linear,
    /// Thin LV in this pool (of the same VG).
    Thin {
        /// The thin pool LV name.
        pool: String,
    },
}

/// `lvcreate` of a new LV of `size` bytes carrying `tags`.
pub fn lvcreate(
    vg: &str,
    lv: &LvName,
    size: u64,
    allocation: &Allocation,
    tags: &[String],
    timeout: Duration,
) -> Cmd {
    let mut cmd = Cmd::new("lvcreate")
        .args(["--yes", "--name", lv.as_str()])
        .timeout(timeout);
    cmd = match allocation {
        Allocation::Linear => cmd.args(["--size".to_string(), format!("{size}b")]),
        Allocation::Thin { pool } => cmd.args([
            "--virtualsize".to_string(),
            format!("{size}b"),
            "--thinpool".to_string(),
            pool.clone(),
        ]),
    };
    for tag in tags {
        cmd = cmd.args(["--addtag", tag]);
    }
    cmd.args(["--", vg])
}

/// LVM's own commands that Carve runs.
pub const LVM_COMMANDS: &[&str] = &[
    "lvs", "vgs", "lvcreate", "lvremove", "lvchange", "lvextend", "lvrename",
];

/// The [`LVM_COMMANDS`] that change metadata: each archives the VG's metadata first
/// (lvm.conf(5) `backup/archive`), so each can trim that archive; the reports (`lvs`, `vgs`)
/// never archive, nor does an activation ([`lvchange_activate`]).
pub const LVM_CHANGES: &[&str] = &["lvcreate", "lvremove", "lvchange", "lvextend", "lvrename"];

/// Whether `cmd` changes LVM metadata: one of [`LVM_CHANGES`] (by name or path), and not an
/// `lvchange --activate`; reports, `blkdiscard` and other helpers do not.
pub fn changes_metadata(cmd: &Cmd) -> bool {
    let program = cmd.program();
    let name = program.rsplit('/').next().unwrap_or(program);
    LVM_CHANGES.contains(&name)
        && !(name == "lvchange" && cmd.arg_values().any(|a| a == "--activate"))
}

/// `lvremove` of one LV (a volume's [`LvName`], or a quarantined LV's name).
pub fn lvremove(vg: &str, lv: impl Display, timeout: Duration) -> Cmd {
    Cmd::new("lvremove")
        .args(["--yes", "--", &format!("{vg}/{lv}")])
        .timeout(timeout)
}

/// `lvchange --addtag` (`add`) or `--deltag` of one tag.
pub fn lvchange_tag(vg: &str, lv: &LvName, tag: &str, add: bool, timeout: Duration) -> Cmd {
    let flag = if add { "--addtag" } else { "--deltag" };
    Cmd::new("lvchange")
        .args([flag, tag, "--", &format!("{vg}/{lv}")])
        .timeout(timeout)
}

/// `lvchange -ay -K`: activates an LV, even one with the activation-skip flag (thin snapshots),
/// by [`LvName`] or a quarantined LV's name.
pub fn lvchange_activate(vg: &str, lv: impl Display, timeout: Duration) -> Cmd {
    Cmd::new("lvchange")
        .args([
            "--activate",
            "y",
            "--ignoreactivationskip",
            "--",
            &format!("{vg}/{lv}"),
        ])
        .timeout(timeout)
}

/// `lvrename vg lv new` (renaming keeps the LV, its tags and its activation).
pub fn lvrename(vg: &str, lv: &LvName, new: &str, timeout: Duration) -> Cmd {
    Cmd::new("lvrename")
        .args(["--yes", "--", vg, lv.as_str(), new])
        .timeout(timeout)
}

/// How a new thin snapshot is activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotUse {
    /// A CSI snapshot: activation-skip set, left inactive (only ever a source of new LVs).
    Snapshot,
    /// A volume restored or cloned from it: activation-skip cleared, active now and at boot.
    Volume,
}

/// `lvcreate --snapshot` of the thin LV `origin` (no size: a thin snapshot), named `lv`.
pub fn lvcreate_thin_snapshot(
    vg: &str,
    origin: &LvName,
    lv: &LvName,
    usage: SnapshotUse,
    tags: &[String],
    timeout: Duration,
) -> Cmd {
    let (skip, activate) = match usage {
        SnapshotUse::Snapshot => ("y", "n"),
        SnapshotUse::Volume => ("n", "y"),
    };
    let mut cmd = Cmd::new("lvcreate")
        .args([
            "--yes",
            "--snapshot",
            "--setactivationskip",
            skip,
            "--activate",
            activate,
            "--name",
            lv.as_str(),
        ])
        .timeout(timeout);
    for tag in tags {
        cmd = cmd.args(["--addtag", tag]);
    }
    cmd.args(["--", &format!("{vg}/{origin}")])
}

/// `lvextend --size <size>b` of one LV (never `--resizefs`: the node grows the filesystem).
pub fn lvextend(vg: &str, lv: &LvName, size: u64, timeout: Duration) -> Cmd {
    Cmd::new("lvextend")
        .args(["--size", &format!("{size}b"), "--", &format!("{vg}/{lv}")])
        .timeout(timeout)
}

/// `lvchange --deltag … --addtag …`: replaces tags in one metadata commit.
pub fn lvchange_retag(
    vg: &str,
    lv: &LvName,
    remove: &[String],
    add: &[String],
    timeout: Duration,
) -> Cmd {
    let mut cmd = Cmd::new("lvchange").timeout(timeout);
    for tag in remove {
        cmd = cmd.args(["--deltag", tag]);
    }
    for tag in add {
        cmd = cmd.args(["--addtag", tag]);
    }
    cmd.args(["--", &format!("{vg}/{lv}")])
}

#[cfg(test)]
mod tests {
    use super::*;

    use csi_common::testing::argv;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn reports_are_json_in_bytes() {
        let lv = LvName::for_volume("pvc-1");
        assert_eq!(
            argv(&lvs_one("vg0", &lv, T)).join(" "),
            format!("lvs --reportformat json --units b --nosuffix -o {LVS_FIELDS} -- vg0/{lv}")
        );
        assert_eq!(
            argv(&vgs("vg0", T)).join(" "),
            format!("vgs --reportformat json --units b --nosuffix -o {VGS_FIELDS} -- vg0")
        );
        assert_eq!(vgs("vg0", T).timeout_value(), T);
    }

    #[test]
    fn lvcreate_linear_and_thin() {
        let lv = LvName::for_volume("--force");
        let tags = vec!["carve.v=1".to_string(), "carve.name.0=--force".to_string()];
        assert_eq!(
            argv(&lvcreate(
                "vg0",
                &lv,
                1 << 30,
                &Allocation::Linear,
                &tags,
                T
            )),
            [
                "lvcreate",
                "--yes",
                "--name",
                lv.as_str(),
                "--size",
                "1073741824b",
                "--addtag",
                "carve.v=1",
                "--addtag",
                "carve.name.0=--force",
                "--",
                "vg0"
            ]
        );
        let thin = Allocation::Thin {
            pool: "pool".into(),
        };
        assert_eq!(
            argv(&lvcreate("vg0", &lv, 4_194_304, &thin, &[], T)),
            [
                "lvcreate",
                "--yes",
                "--name",
                lv.as_str(),
                "--virtualsize",
                "4194304b",
                "--thinpool",
                "pool",
                "--",
                "vg0"
            ]
        );
    }

    #[test]
    fn mutations_name_vg_slash_lv_after_double_dash() {
        let lv = LvName::for_volume("a");
        assert_eq!(
            argv(&lvremove("vg0", &lv, T)),
            ["lvremove", "--yes", "--", &format!("vg0/{lv}")]
        );
        assert_eq!(
            argv(&lvchange_tag(
                "vg0",
                &lv,
                "carve.pub=rw:iqn.2024-01.a:b",
                false,
                T
            )),
            [
                "lvchange",
                "--deltag",
                "carve.pub=rw:iqn.2024-01.a:b",
                "--",
                &format!("vg0/{lv}")
            ]
        );
        assert_eq!(
            argv(&lvchange_activate("vg0", &lv, T)),
            [
                "lvchange",
                "--activate",
                "y",
                "--ignoreactivationskip",
                "--",
                &format!("vg0/{lv}")
            ]
        );
    }

    fn lv(name: &str) -> LvName {
        LvName::parse(name).unwrap()
    }

    #[test]
    fn snapshots_have_no_size_and_an_explicit_activation_skip() {
        let tags = vec!["carve.v=1".to_string()];
        assert_eq!(
            argv(&lvcreate_thin_snapshot(
                "vg0",
                &lv("csi-a-1"),
                &lv("snap-s-1"),
                SnapshotUse::Snapshot,
                &tags,
                T
            )),
            [
                "lvcreate",
                "--yes",
                "--snapshot",
                "--setactivationskip",
                "y",
                "--activate",
                "n",
                "--name",
                "snap-s-1",
                "--addtag",
                "carve.v=1",
                "--",
                "vg0/csi-a-1"
            ]
        );
        let restore = argv(&lvcreate_thin_snapshot(
            "vg0",
            &lv("snap-s-1"),
            &lv("csi-r-1"),
            SnapshotUse::Volume,
            &[],
            T,
        ));
        assert_eq!(
            restore.join(" "),
            "lvcreate --yes --snapshot --setactivationskip n --activate y --name csi-r-1 -- vg0/snap-s-1"
        );
    }

    #[test]
    fn extend_and_retag_argv() {
        assert_eq!(
            argv(&lvextend("vg0", &lv("csi-a-1"), 134_217_728, T)),
            ["lvextend", "--size", "134217728b", "--", "vg0/csi-a-1"]
        );
        assert_eq!(
            argv(&lvchange_retag(
                "vg0",
                &lv("csi-a-1"),
                &["carve.required=1".into()],
                &["carve.required=2".into()],
                T
            ))
            .join(" "),
            "lvchange --deltag carve.required=1 --addtag carve.required=2 -- vg0/csi-a-1"
        );
    }
}
