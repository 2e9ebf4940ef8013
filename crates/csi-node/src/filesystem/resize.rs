//! Growing a mounted filesystem online to fill its (already grown) disk: `resize2fs` for ext4
//! (on the device), `xfs_growfs -d` for XFS (on the mount point), through the command runner.
//!
//! Invariants: no size argument is ever passed, so the tools grow to the device's size and
//! never shrink; both tools answer 0 when there is nothing to grow, which makes the call
//! idempotent; any other exit fails the call with the tool's stderr.

use super::mkfs::Formatter;
use csi_common::{Error, Result, command::Cmd};
use std::path::Path;

/// The command that grows `fs_type`, mounted from `device` at `mount_point`, to fill the device.
pub fn grow_cmd(fs_type: &str, device: &Path, mount_point: &Path) -> Result<Cmd> {
    match fs_type {
        "ext4" => Ok(Cmd::new("resize2fs").arg(device.to_string_lossy())),
        "xfs" => Ok(Cmd::new("xfs_growfs")
            .arg("-d")
            .arg(mount_point.to_string_lossy())),
        other => Err(Error::invalid_argument(format!(
            "cannot grow a {other:?} filesystem"
        ))),
    }
}

impl Formatter {
    /// Grows the filesystem mounted from `device` at `mount_point` to fill the device.
    pub async fn grow(&self, fs_type: &str, device: &Path, mount_point: &Path) -> Result<()> {
        let cmd = grow_cmd(fs_type, device, mount_point)?.timeout(self.timeout);
        self.runner.run(&cmd).await?.ok().map_err(|e| {
            Error::from(e).context(format!("grow {fs_type} on {}", device.display()))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::command::{Expectation, ScriptedRunner};
    use std::{sync::Arc, time::Duration};

    #[tokio::test]
    async fn argv_and_failures() {
        let fake = Arc::new(ScriptedRunner::new());
        // Only the exit code matters; stdout is what the tools print on success.
        fake.expect(Expectation::new(["resize2fs", "/dev/sdb"]).stdout(
            "Filesystem at /dev/sdb is mounted on /stage; on-line resizing required\n\
             The filesystem on /dev/sdb is now 131072 (1k) blocks long.\n",
        ));
        fake.expect(
            Expectation::new(["xfs_growfs", "-d", "/stage"])
                .stdout("data blocks changed from 81920 to 98304\n"),
        );
        fake.expect(Expectation::new(["resize2fs", "/dev/sdb"]).fails(
            1,
            "resize2fs: Device or resource busy while trying to open /dev/sdb",
        ));
        let f = Formatter {
            runner: fake.clone(),
            timeout: Duration::from_secs(5),
        };
        let (dev, at) = (Path::new("/dev/sdb"), Path::new("/stage"));
        f.grow("ext4", dev, at).await.unwrap();
        f.grow("xfs", dev, at).await.unwrap();
        let err = f.grow("ext4", dev, at).await.unwrap_err();
        assert!(err.message().contains("resource busy"), "{err}");
        assert_eq!(
            f.grow("btrfs", dev, at).await.unwrap_err().kind(),
            csi_common::Kind::InvalidArgument
        );
        fake.finish();
    }
}
