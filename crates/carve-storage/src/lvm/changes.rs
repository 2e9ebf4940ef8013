//! The LV changes run by [`LvmCli`] beyond removal: creating a volume's LV with its tags, thin
//! snapshots (CSI snapshots, restores, clones), growing an LV, and replacing tags in one command
//! (their argv is in [`super::argv`]).
//!
//! Invariants: argv only, every VG/LV operand after `--`; sizes in exact bytes; a thin snapshot
//! never gets a size (so LVM makes a thin snapshot sharing the pool, never a classic COW one);
//! the activation-skip flag is set explicitly either way (`y` for CSI snapshots, which are
//! never exported; `n` for restores and clones, which must come up at boot like any volume),
//! never left to lvm.conf; the LV and its tags are created by one `lvcreate`; no space is
//! `ResourceExhausted`, a missing origin `NotFound`, a name taken `AlreadyExists`.

use super::{
    Allocation, Change, LvmCli, SnapshotUse, Within, argv,
    argv::{lvchange_retag, lvcreate_thin_snapshot, lvextend},
};
use csi_common::{Error, Result, ids::LvName};
use tracing::info;

fn no_space(stderr: &str) -> bool {
    let stderr = stderr.to_ascii_lowercase();
    stderr.contains("insufficient free space")
        || stderr.contains("insufficient suitable")
        || stderr.contains("reached threshold")
        || stderr.contains("out of data space")
}

impl LvmCli {
    pub(super) async fn create_admitted(
        &self,
        lv: &LvName,
        size: u64,
        allocation: &Allocation,
        tags: &[String],
        within: Option<Within<'_>>,
    ) -> Result<()> {
        let cmd = argv::lvcreate(&self.vg, lv, size, allocation, tags, self.timeout);
        let change = Change::Created {
            lv: lv.as_str(),
            size,
            pool: match allocation {
                Allocation::Thin { pool } => Some(pool.as_str()),
                Allocation::Linear => None,
            },
            tags,
        };
        let out = self.mutate_within(cmd, within, change).await?;
        if out.success() {
            info!(lv = %lv, vg = %self.vg, size, ?allocation, "created logical volume");
            return Ok(());
        }
        let stderr = out.stderr.to_ascii_lowercase();
        if stderr.contains("insufficient free space") || stderr.contains("insufficient suitable") {
            return Err(Error::resource_exhausted(format!(
                "not enough free space for {size} bytes: {}",
                out.stderr.trim()
            )));
        }
        if stderr.contains("already exists") {
            return Err(Error::already_exists(format!(
                "logical volume {lv} already exists in {}",
                self.vg
            )));
        }
        Err(self.failed(out))
    }

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
        command::{Cmd, Expectation, ScriptedRunner},
        testing::refused,
    };
    use std::{sync::Arc, time::Duration};

    const T: Duration = Duration::from_secs(5);
    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/controller"
    );

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    use csi_common::testing::argv;

    fn lv(name: &str) -> LvName {
        LvName::parse(name).unwrap()
    }

    fn cli(runner: &Arc<ScriptedRunner>) -> LvmCli {
        LvmCli::new(runner.clone(), "carvevg", T)
    }

    #[tokio::test]
    async fn one_change_in_sixteen_carries_the_archive_retention_and_no_read_does() {
        use super::super::{
            ARCHIVE_TRIM_EVERY,
            argv::{changes_metadata, lvchange_activate, lvremove},
        };
        let runner = Arc::new(ScriptedRunner::new());
        let with_config = |cmd: &Cmd, keep: u32| {
            let mut all = argv(cmd);
            all.splice(
                1..1,
                [
                    "--config".to_string(),
                    format!("backup{{retain_min={keep} retain_days=0}}"),
                ],
            );
            all
        };
        let one = lv("csi-a-0001");
        let lvm = cli(&runner).with_archive_keep(7);
        // the first change carries it, before the `--` that ends its options
        runner.expect(Expectation::new(with_config(
            &lvremove("carvevg", &one, T),
            7,
        )));
        assert!(lvm.remove(&one).await.unwrap());
        // a read never archives, so never carries it (and does not count),
        runner.expect(
            Expectation::new(argv(&super::super::argv::lvs_one("carvevg", &one, T)))
                .stdout(crate::lvm::testing::lvs_json(&[])),
        );
        assert_eq!(lvm.read(&one).await.unwrap(), None);
        // nor does an activation, which changes no metadata
        runner.expect(Expectation::new(argv(
            &super::super::argv::lvchange_activate("carvevg", &one, T),
        )));
        lvm.activate(&one).await.unwrap();
        // the next fifteen changes follow the host's lvm.conf; the sixteenth after it trims
        for _ in 1..ARCHIVE_TRIM_EVERY {
            runner.expect(Expectation::new(argv(&lvremove("carvevg", &one, T))));
            assert!(lvm.remove(&one).await.unwrap());
        }
        runner.expect(Expectation::new(with_config(
            &lvremove("carvevg", &one, T),
            7,
        )));
        assert!(lvm.remove(&one).await.unwrap());
        // 0: the host's lvm.conf decides, nothing is added
        let lvm = cli(&runner).with_archive_keep(0);
        runner.expect(Expectation::new(argv(&lvremove("carvevg", &one, T))));
        assert!(lvm.remove(&one).await.unwrap());
        runner.finish();
        assert!(changes_metadata(&Cmd::new("/usr/sbin/lvcreate")));
        assert!(changes_metadata(&super::super::argv::lvchange_tag(
            "carvevg", &one, "carve.x", true, T
        )));
        assert!(!changes_metadata(&lvchange_activate("carvevg", &one, T)));
        assert!(!changes_metadata(&Cmd::new("lvs")));
        assert!(!changes_metadata(&Cmd::new("blkdiscard")));
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
        for (origin, name, stderr, kind) in [
            (
                "csi-src-0123",
                "snap-s1-4567",
                "lvcreate-snapshot-exists.stderr",
                Kind::AlreadyExists,
            ),
            (
                "csi-nope-0000",
                "snap-x-0000",
                "lvcreate-snapshot-no-origin.stderr",
                Kind::NotFound,
            ),
        ] {
            runner.expect(Expectation::new(snap(origin, name)).fails(5, fixture(stderr)));
            refused(
                lvm.snapshot(&lv(origin), &lv(name), SnapshotUse::Snapshot, &[])
                    .await,
                kind,
            );
        }
        for (name, size, stderr, kind) in [
            (
                "csi-lin-cdef",
                107_374_182_400,
                "lvextend-nospace.stderr",
                Kind::ResourceExhausted,
            ),
            (
                "csi-restored-89ab",
                67_108_864,
                "lvextend-smaller.stderr",
                Kind::Internal,
            ),
        ] {
            runner.expect(
                Expectation::new(argv(&lvextend("carvevg", &lv(name), size, T)))
                    .fails(5, fixture(stderr)),
            );
            refused(lvm.extend(&lv(name), size).await, kind);
        }
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
                134_217_728,
                T,
            )))
            .stdout(fixture("lvextend-thin.stdout")),
        );
        lvm.extend(&lv("csi-restored-89ab"), 134_217_728)
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
