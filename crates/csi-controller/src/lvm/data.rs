//! LVM for the data services: thin snapshots (CSI snapshots, restores, clones), growing an LV,
//! and replacing tags in one command.
//!
//! Invariants: argv only, every VG/LV operand after `--`; sizes in exact bytes; a thin snapshot
//! never gets a size (so LVM makes a thin snapshot sharing the pool, never a classic COW one);
//! the activation-skip flag is set explicitly either way (`y` for CSI snapshots, which are
//! never exported; `n` for restores and clones, which must come up at boot like any volume),
//! never left to lvm.conf; the LV and its tags are created by one `lvcreate`; no space is
//! `ResourceExhausted`, a missing origin `NotFound`, a name taken `AlreadyExists`.

use super::{Change, LvmCli, Within};
use csi_common::{Error, Result, command::Cmd, ids::LvName};
use std::time::Duration;
use tracing::info;

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

fn no_space(stderr: &str) -> bool {
    let stderr = stderr.to_ascii_lowercase();
    stderr.contains("insufficient free space")
        || stderr.contains("insufficient suitable")
        || stderr.contains("reached threshold")
        || stderr.contains("out of data space")
}

impl LvmCli {
    pub(super) async fn thin_snapshot(
        &self,
        origin: &LvName,
        lv: &LvName,
        usage: SnapshotUse,
        tags: &[String],
        within: Option<Within<'_>>,
    ) -> Result<()> {
        let cmd = lvcreate_thin_snapshot(&self.vg, origin, lv, usage, tags, self.timeout);
        let out = self.mutate_within(cmd, within, Change::Unmodelled).await?;
        if out.success() {
            info!(lv = %lv, origin = %origin, vg = %self.vg, ?usage, "created thin snapshot");
            return Ok(());
        }
        if no_space(&out.stderr) {
            return Err(Error::resource_exhausted(format!(
                "no space in the thin pool for a snapshot of {origin}: {}",
                out.stderr.trim()
            )));
        }
        if out.stderr.contains("already exists") {
            return Err(Error::already_exists(format!(
                "logical volume {lv} already exists in {}",
                self.vg
            )));
        }
        if out.stderr.contains("Failed to find") || out.stderr.contains("not found") {
            if let Some(e) = self.vg_missing(&out) {
                return Err(e);
            }
            return Err(Error::not_found(format!(
                "origin {origin} of the snapshot does not exist: {}",
                out.stderr.trim()
            )));
        }
        Err(self.failed(out))
    }

    pub(super) async fn grow(
        &self,
        lv: &LvName,
        size: u64,
        within: Option<Within<'_>>,
    ) -> Result<()> {
        let cmd = lvextend(&self.vg, lv, size, self.timeout);
        let change = Change::Extended {
            lv: lv.as_str(),
            size,
        };
        let out = self.mutate_within(cmd, within, change).await?;
        if out.success() {
            info!(lv = %lv, vg = %self.vg, size, "extended logical volume");
            return Ok(());
        }
        if no_space(&out.stderr) {
            return Err(Error::resource_exhausted(format!(
                "not enough free space to grow {lv} to {size} bytes: {}",
                out.stderr.trim()
            )));
        }
        Err(self.failed(out))
    }

    pub(super) async fn replace_tags(
        &self,
        lv: &LvName,
        remove: &[String],
        add: &[String],
    ) -> Result<()> {
        let cmd = lvchange_retag(&self.vg, lv, remove, add, self.timeout);
        let change = Change::Tagged {
            lv: lv.as_str(),
            remove,
            add,
        };
        let out = self.mutate(cmd, change).await?;
        if out.success() {
            return Ok(());
        }
        Err(self.failed(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::Lvm;
    use csi_common::{
        Kind,
        command::{Expectation, ScriptedRunner},
    };
    use std::sync::Arc;

    const T: Duration = Duration::from_secs(5);
    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/controller"
    );

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn argv(cmd: &Cmd) -> Vec<String> {
        std::iter::once(cmd.program().to_string())
            .chain(cmd.arg_values().map(str::to_string))
            .collect()
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
            argv(&lvextend("vg0", &lv("csi-a-1"), 134217728, T)),
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

    fn cli(runner: &Arc<ScriptedRunner>) -> LvmCli {
        LvmCli::new(runner.clone(), "carvevg", T)
    }

    #[tokio::test]
    async fn captured_failures_map_to_their_kinds() {
        let runner = Arc::new(ScriptedRunner::new());
        let lvm = cli(&runner);
        let snap = |origin: &str, name: &str| {
            argv(&lvcreate_thin_snapshot(
                "carvevg",
                &lv(origin),
                &lv(name),
                SnapshotUse::Snapshot,
                &[],
                T,
            ))
        };
        runner.expect(
            Expectation::new(snap("csi-src-0123", "snap-s1-4567"))
                .fails(5, fixture("lvcreate-snapshot-exists.stderr")),
        );
        let err = lvm
            .snapshot(
                &lv("csi-src-0123"),
                &lv("snap-s1-4567"),
                SnapshotUse::Snapshot,
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Kind::AlreadyExists, "{err}");
        runner.expect(
            Expectation::new(snap("csi-nope-0000", "snap-x-0000"))
                .fails(5, fixture("lvcreate-snapshot-no-origin.stderr")),
        );
        let err = lvm
            .snapshot(
                &lv("csi-nope-0000"),
                &lv("snap-x-0000"),
                SnapshotUse::Snapshot,
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Kind::NotFound, "{err}");
        runner.expect(
            Expectation::new(argv(&lvextend(
                "carvevg",
                &lv("csi-lin-cdef"),
                107374182400,
                T,
            )))
            .fails(5, fixture("lvextend-nospace.stderr")),
        );
        let err = lvm
            .extend(&lv("csi-lin-cdef"), 107374182400)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Kind::ResourceExhausted, "{err}");
        runner.expect(
            Expectation::new(argv(&lvextend(
                "carvevg",
                &lv("csi-restored-89ab"),
                67108864,
                T,
            )))
            .fails(5, fixture("lvextend-smaller.stderr")),
        );
        let err = lvm
            .extend(&lv("csi-restored-89ab"), 67108864)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Kind::Internal, "{err}");
        runner.finish();
    }

    #[tokio::test]
    async fn successes_run_one_command_each() {
        let runner = Arc::new(ScriptedRunner::new());
        let lvm = cli(&runner);
        runner.expect(
            Expectation::new(argv(&lvextend(
                "carvevg",
                &lv("csi-restored-89ab"),
                134217728,
                T,
            )))
            .stdout(fixture("lvextend-thin.stdout")),
        );
        lvm.extend(&lv("csi-restored-89ab"), 134217728)
            .await
            .unwrap();
        let (old, new) = (
            vec!["carve.required=67108864".to_string()],
            vec!["carve.required=134217728".to_string()],
        );
        runner.expect(
            Expectation::new(argv(&lvchange_retag(
                "carvevg",
                &lv("csi-restored-89ab"),
                &old,
                &new,
                T,
            )))
            .stdout(fixture("lvchange-retag.stdout")),
        );
        lvm.retag(&lv("csi-restored-89ab"), &old, &new)
            .await
            .unwrap();
        runner.finish();
    }
}
