//! mkfs and fsck argv, run through the command runner.
//!
//! Invariants: mkfs is never forced (`mkfs.xfs` without `-f` refuses a disk with a signature it
//! knows). That is no guard for ext4: `mkfs.ext4` asks before overwriting a filesystem only when
//! stdin is a terminal, and proceeds otherwise (mke2fs(8) `-F`; `check_plausibility` in
//! e2fsprogs), so the format decision ([`super::decide`]) is the only guard. No discard at mkfs
//! time (a new thin LV is already unmapped). `e2fsck -p` exit
//! codes 0 and 1 (errors corrected) are success; anything else fails the stage.

use csi_common::{
    Error, Result,
    command::{Cmd, CommandRunner},
};
use std::{path::Path, sync::Arc, time::Duration};

/// The filesystem types the node formats.
pub const SUPPORTED: [&str; 2] = ["ext4", "xfs"];

/// The mkfs command for `fs_type` on `device`.
pub fn mkfs_cmd(fs_type: &str, device: &Path) -> Result<Cmd> {
    let dev = device.to_string_lossy().into_owned();
    match fs_type {
        "ext4" => Ok(Cmd::new("mkfs.ext4")
            .args(["-q", "-E", "nodiscard", "-m", "0"])
            .arg(dev)),
        "xfs" => Ok(Cmd::new("mkfs.xfs").args(["-q", "-K"]).arg(dev)),
        other => Err(Error::invalid_argument(format!(
            "unsupported fsType {other:?}"
        ))),
    }
}

/// The check run before mounting an existing filesystem, if it needs one (XFS replays its log
/// at mount time and has no preen mode).
pub fn fsck_cmd(fs_type: &str, device: &Path) -> Option<Cmd> {
    (fs_type == "ext4").then(|| Cmd::new("e2fsck").arg("-p").arg(device.to_string_lossy()))
}

/// Runs mkfs/fsck.
#[derive(Debug, Clone)]
pub struct Formatter {
    /// The runner.
    pub runner: Arc<dyn CommandRunner>,
    /// Timeout of mkfs and fsck.
    pub timeout: Duration,
}

impl Formatter {
    /// Makes a filesystem.
    pub async fn mkfs(&self, fs_type: &str, device: &Path) -> Result<()> {
        let cmd = mkfs_cmd(fs_type, device)?.timeout(self.timeout);
        self.runner.run(&cmd).await?.ok()?;
        Ok(())
    }

    /// Checks (and preens) a filesystem before mounting it.
    pub async fn fsck(&self, fs_type: &str, device: &Path) -> Result<()> {
        let Some(cmd) = fsck_cmd(fs_type, device) else {
            return Ok(());
        };
        let out = self.runner.run(&cmd.timeout(self.timeout)).await?;
        match out.code {
            Some(0 | 1) => Ok(()),
            _ => Err(Error::internal(format!(
                "filesystem check found errors it could not fix: {}",
                out.ok().unwrap_err()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::command::{Expectation, ScriptedRunner};

    #[tokio::test]
    async fn argv_and_exit_codes() {
        let fake = Arc::new(ScriptedRunner::new());
        fake.expect(Expectation::new([
            "mkfs.ext4",
            "-q",
            "-E",
            "nodiscard",
            "-m",
            "0",
            "/dev/sda",
        ]));
        fake.expect(Expectation::new(["mkfs.xfs", "-q", "-K", "/dev/sda"]));
        fake.expect(
            Expectation::new(["e2fsck", "-p", "/dev/sda"])
                .stdout("/dev/sda: clean, 11/65536 files, 12955/262144 blocks\n"),
        );
        fake.expect(Expectation::new(["e2fsck", "-p", "/dev/sda"]).fails(1, ""));
        fake.expect(
            Expectation::new(["e2fsck", "-p", "/dev/sda"])
                .fails(4, "UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY."),
        );
        let f = Formatter {
            runner: fake.clone(),
            timeout: Duration::from_secs(5),
        };
        let dev = Path::new("/dev/sda");
        f.mkfs("ext4", dev).await.unwrap();
        f.mkfs("xfs", dev).await.unwrap();
        assert!(f.mkfs("btrfs", dev).await.is_err());
        f.fsck("ext4", dev).await.unwrap();
        f.fsck("ext4", dev).await.unwrap();
        let err = f.fsck("ext4", dev).await.unwrap_err();
        assert!(err.message().contains("MANUALLY"), "{err}");
        f.fsck("xfs", dev).await.unwrap();
        fake.finish();
    }
}
