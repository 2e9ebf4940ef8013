//! Probe for the controller: every program it runs exists, the volume group exists, the thin
//! pool (if any) exists, zeroes new chunks (unless `--allow-unzeroed-thin-pool`) and has not
//! failed or turned its metadata read-only (read from device-mapper, which takes no VG lock;
//! from LVM when the pool is not active), and the LIO backend is usable. A pool out of data
//! space is not a Probe failure (a restart would not help, and linear volumes still work):
//! VolumeCondition and GetCapacity say it. Once all that holds, the controller is ready only
//! when startup reconciliation has completed ([`Restoration`]).

use crate::{
    config::{LioBackend, StorageHostArgs},
    lvm::{argv, pool_status, report, space},
    restoration::Restoration,
};
use csi_common::{
    command::{BoxFuture, Cmd, CommandRunner, run_for_reason},
    identity::Readiness,
};
use std::{path::PathBuf, sync::Arc, time::Duration};

/// Checks the volume group and the LIO backend on every Probe.
#[derive(Debug)]
pub struct ControllerReadiness {
    runner: Arc<dyn CommandRunner>,
    volume_group: Option<String>,
    thin_pool: Option<String>,
    allow_unzeroed_thin_pool: bool,
    backend: LioBackend,
    programs: Vec<PathBuf>,
    targetcli: PathBuf,
    configfs_root: PathBuf,
    restoration: Restoration,
}

impl ControllerReadiness {
    /// Readiness for the host configured by `args`, its commands run under `command_prefix`.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        args: &StorageHostArgs,
        command_prefix: &[String],
    ) -> Self {
        Self {
            runner,
            volume_group: args.volume_group.clone(),
            thin_pool: args.thin_pool.clone(),
            allow_unzeroed_thin_pool: args.allow_unzeroed_thin_pool,
            backend: args.lio_backend,
            programs: crate::host::needed_programs(args, command_prefix),
            targetcli: args.targetcli.clone(),
            configfs_root: args.configfs_root.clone(),
            restoration: Restoration::default(),
        }
    }

    /// The same readiness, not ready until `restoration` is complete.
    #[must_use]
    pub fn with_restoration(mut self, restoration: Restoration) -> Self {
        self.restoration = restoration;
        self
    }

    async fn check_now(&self) -> Result<(), String> {
        let missing = crate::tools::missing(&self.programs);
        if !missing.is_empty() {
            return Err(format!("programs not found: {}", missing.join(", ")));
        }
        let vg = self
            .volume_group
            .as_deref()
            .ok_or("no --volume-group configured")?;
        let vgs = Cmd::new("vgs")
            .args(["--noheadings", "-o", "vg_name", "--", vg])
            .timeout(Duration::from_secs(30));
        run_for_reason(&*self.runner, &vgs, "cannot run vgs")
            .await?
            .ok_or_reason(&format!("volume group {vg:?} not found"))?;
        if let Some(pool) = &self.thin_pool {
            self.check_pool(vg, pool).await?;
        }
        if !self.configfs_root.is_dir() {
            return Err(format!(
                "{} is missing: load target_core_mod and iscsi_target_mod, mount configfs",
                self.configfs_root.display()
            ));
        }
        if self.backend == LioBackend::Targetcli {
            let program = self.targetcli.display().to_string();
            let version = Cmd::new(program)
                .arg("version")
                .timeout(Duration::from_mins(1));
            run_for_reason(&*self.runner, &version, "targetcli is not runnable")
                .await?
                .ok_or_reason("targetcli is not runnable")?;
        }
        self.restoration.ready()
    }
}

impl ControllerReadiness {
    /// Reads the thin pool from device-mapper ([`pool_status`]: no VG lock, so a Probe every
    /// few seconds does not hold up the VG's changes), or from LVM (`lvs vg/pool`) when that
    /// cannot be read (an inactive or missing pool: LVM then says which).
    async fn check_pool(&self, vg: &str, pool: &str) -> Result<(), String> {
        let timeout = Duration::from_secs(30);
        let from_dm = pool_status::read(&*self.runner, vg, pool, timeout)
            .await
            .map(|status| pool_status::row(pool, &status));
        let rows;
        let row = if let Some(row) = &from_dm {
            row
        } else {
            let cmd = argv::lvs(&format!("{vg}/{pool}"), timeout);
            let out = run_for_reason(&*self.runner, &cmd, "cannot run lvs")
                .await?
                .ok_or_reason(&format!("thin pool {vg}/{pool} not found"))?;
            rows = report::parse_lvs(&out.stdout).map_err(|e| e.to_string())?;
            space::pool_row(&rows, pool).map_err(|e| e.to_string())?
        };
        if !self.allow_unzeroed_thin_pool {
            space::require_zeroing(row).map_err(|e| e.to_string())?;
        }
        match space::pool_fault(row) {
            Some(fault @ ("failed" | "metadata read-only")) => {
                Err(format!("thin pool {vg}/{pool} is {fault}"))
            }
            _ => Ok(()),
        }
    }
}

impl Readiness for ControllerReadiness {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.check_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{lvs_json, pool_row};
    use clap::Parser;
    use csi_common::command::{Expectation, ScriptedRunner};

    fn readiness(runner: &Arc<ScriptedRunner>, extra: &[&str]) -> ControllerReadiness {
        let argv = [
            "csi-controller",
            "--volume-group",
            "vg",
            "--thin-pool",
            "pool",
        ];
        let args = crate::config::ControllerArgs::parse_from(argv.iter().chain(extra));
        ControllerReadiness::new(runner.clone(), &args.host, &args.common.prefix())
    }

    /// The pool with `attr` as device-mapper shows it (Probe's first reading).
    fn expect_pool(runner: &ScriptedRunner, attr: &str) {
        let t = Duration::from_secs(30);
        let mut row = pool_row(1 << 30);
        row.attr = attr.into();
        let (table, status) = carve_storage::lvm::testing::dm_pool_lines(&row);
        runner.expect(Expectation::of(&pool_status::status_cmd("vg-pool-tpool", t)).stdout(status));
        runner.expect(Expectation::of(&pool_status::table_cmd("vg-pool-tpool", t)).stdout(table));
    }

    /// The pool with `attr` as LVM shows it, device-mapper having no device of either name.
    fn expect_pool_from_lvm(runner: &ScriptedRunner, attr: &str) {
        let t = Duration::from_secs(30);
        for name in pool_status::dm_names("vg", "pool") {
            runner.expect(
                Expectation::of(&pool_status::status_cmd(&name, t))
                    .fails(1, "Device does not exist.\nCommand failed.\n"),
            );
        }
        let mut row = pool_row(1 << 30);
        row.attr = attr.into();
        runner.expect(Expectation::of(&argv::lvs("vg/pool", t)).stdout(lvs_json(&[row])));
    }

    #[tokio::test]
    async fn an_unzeroed_failed_or_read_only_pool_is_not_ready() {
        let runner = Arc::new(ScriptedRunner::new());
        let strict = readiness(&runner, &[]);
        let lax = readiness(&runner, &["--allow-unzeroed-thin-pool"]);
        expect_pool(&runner, "twi-aotz--");
        strict.check_pool("vg", "pool").await.unwrap();
        expect_pool(&runner, "twi-aotzD-");
        strict.check_pool("vg", "pool").await.unwrap();
        expect_pool(&runner, "twi-aot---");
        let err = strict.check_pool("vg", "pool").await.unwrap_err();
        assert!(err.contains("does not zero"), "{err}");
        expect_pool(&runner, "twi-aot---");
        lax.check_pool("vg", "pool").await.unwrap();
        for (attr, what) in [("twi-aotzF-", "failed"), ("twi-aotzM-", "read-only")] {
            expect_pool(&runner, attr);
            let err = lax.check_pool("vg", "pool").await.unwrap_err();
            assert!(err.contains(what), "{err}");
            // The same from LVM when device-mapper cannot show the pool.
            expect_pool_from_lvm(&runner, attr);
            let err = lax.check_pool("vg", "pool").await.unwrap_err();
            assert!(err.contains(what), "{err}");
        }
        expect_pool_from_lvm(&runner, "twi-aot---");
        let err = strict.check_pool("vg", "pool").await.unwrap_err();
        assert!(err.contains("does not zero"), "{err}");
        runner.finish();
    }
}
