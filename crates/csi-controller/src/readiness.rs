//! Probe for the controller: every program it runs exists, the volume group exists and the
//! LIO backend is usable.

use crate::config::{ControllerArgs, LioBackend};
use csi_common::{
    command::{BoxFuture, Cmd, CommandRunner},
    identity::Readiness,
};
use std::{path::PathBuf, sync::Arc, time::Duration};

/// Checks the volume group and the LIO backend on every Probe.
#[derive(Debug)]
pub struct ControllerReadiness {
    runner: Arc<dyn CommandRunner>,
    volume_group: Option<String>,
    backend: LioBackend,
    programs: Vec<PathBuf>,
    targetcli: PathBuf,
    configfs_root: PathBuf,
}

impl ControllerReadiness {
    /// Readiness for the configuration in `args`.
    pub fn new(runner: Arc<dyn CommandRunner>, args: &ControllerArgs) -> Self {
        Self {
            runner,
            volume_group: args.volume_group.clone(),
            backend: args.lio_backend,
            programs: crate::server::needed_programs(args),
            targetcli: args.targetcli.clone(),
            configfs_root: args.configfs_root.clone(),
        }
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
        let out = self
            .runner
            .run(
                &Cmd::new("vgs")
                    .args(["--noheadings", "-o", "vg_name", "--", vg])
                    .timeout(Duration::from_secs(30)),
            )
            .await
            .map_err(|e| format!("cannot run vgs: {e}"))?;
        if !out.success() {
            return Err(format!(
                "volume group {vg:?} not found: {}",
                out.stderr.trim()
            ));
        }
        if !self.configfs_root.is_dir() {
            return Err(format!(
                "{} is missing: load target_core_mod and iscsi_target_mod, mount configfs",
                self.configfs_root.display()
            ));
        }
        if self.backend == LioBackend::Targetcli {
            let program = self.targetcli.display().to_string();
            let out = self
                .runner
                .run(
                    &Cmd::new(program)
                        .arg("version")
                        .timeout(Duration::from_secs(60)),
                )
                .await
                .map_err(|e| format!("targetcli is not runnable: {e}"))?;
            if !out.success() {
                return Err(format!("targetcli is not runnable: {}", out.stderr.trim()));
            }
        }
        Ok(())
    }
}

impl Readiness for ControllerReadiness {
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.check_now())
    }
}
