//! [`Multipath`] on the real system: `multipath` and `multipathd` through the command runner,
//! maps and their paths read from sysfs, the drop-in written atomically.
//!
//! Invariant: the sysfs root and the configuration directory are parameters, so everything but
//! the tools themselves is tested on plain trees.

use super::{Multipath, conf};
use crate::{device::Device, iscsi::Removal};
use csi_common::{
    Error, Result,
    command::{BoxFuture, Cmd, CommandRunner},
};
use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

/// multipath-tools on this host.
#[derive(Debug, Clone)]
pub struct MultipathTools {
    /// Runs `multipath` and `multipathd`.
    pub runner: Arc<dyn CommandRunner>,
    /// The `multipath` program (`--multipath-program`).
    pub multipath: String,
    /// The `multipathd` program (`--multipathd-program`).
    pub multipathd: String,
    /// sysfs root (`/sys`).
    pub sys: PathBuf,
    /// multipath-tools' `config_dir` (`/etc/multipath/conf.d`), where the drop-in goes.
    pub conf_dir: PathBuf,
    /// Timeout of each call.
    pub timeout: Duration,
}

/// The by-id device node udev (13-dm-disk.rules) gives the map of `wwid`.
pub fn map_node(wwid: &str) -> PathBuf {
    PathBuf::from(format!("/dev/disk/by-id/dm-uuid-mpath-{wwid}"))
}

/// The `dm-N` whose `dm/uuid` is `mpath-<wwid>` under `sys`, if any.
///
/// First through `link`, the map's by-id link ([`map_node`]): when udev made it, that is one
/// sysfs read instead of one for every device-mapper device on the node (a node's LVM volumes
/// and read-only views count too). A map without its link, or a link that names another device,
/// is looked for by reading every `dm-*`'s `dm/uuid`. Either way the answer is the kernel's
/// `dm/uuid`: the link only says where to look first.
pub fn find_map(sys: &Path, link: &Path, wwid: &str) -> Option<String> {
    let want = format!("mpath-{wwid}");
    let is_the_map = |name: &str| {
        name.starts_with("dm-")
            && std::fs::read_to_string(sys.join("class/block").join(name).join("dm/uuid"))
                .is_ok_and(|u| u.trim() == want)
    };
    let linked = std::fs::canonicalize(link)
        .ok()
        .and_then(|target| Some(target.file_name()?.to_string_lossy().into_owned()));
    if let Some(name) = linked.filter(|n| is_the_map(n)) {
        return Some(name);
    }
    let entries = std::fs::read_dir(sys.join("class/block")).ok()?;
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| is_the_map(n))
}

/// Kernel names under `sys/class/block/<dm>/slaves`, sorted.
pub fn slaves(sys: &Path, dm: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sys.join("class/block").join(dm).join("slaves"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl MultipathTools {
    async fn run(&self, daemon: bool, args: &[&str]) -> Result<String> {
        let program = if daemon {
            &self.multipathd
        } else {
            &self.multipath
        };
        let cmd = Cmd::new(program)
            .args(args.iter().copied())
            .timeout(self.timeout);
        let out = self.runner.run(&cmd).await?.ok()?;
        Ok(out.stdout)
    }

    /// multipathd's CLI answers `fail` (exit 0 in 0.9.4) when a command did not work.
    async fn multipathd(&self, args: &[&str]) -> Result<String> {
        let out = self.run(true, args).await?;
        if out.trim() == "fail" || out.contains("timeout receiving packet") {
            return Err(Error::internal(format!(
                "multipathd {} answered {:?}",
                args.join(" "),
                out.trim()
            )));
        }
        Ok(out)
    }

    fn write_drop_in(&self) -> Result<bool> {
        let path = self.conf_dir.join(conf::FILE_NAME);
        if std::fs::read_to_string(&path).is_ok_and(|t| t == conf::DROP_IN) {
            return Ok(false);
        }
        let fail = |what: &str, e: std::io::Error| {
            Error::internal(format!("multipath drop-in {}: {what}: {e}", path.display()))
        };
        std::fs::create_dir_all(&self.conf_dir).map_err(|e| fail("mkdir", e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".carve")
            .tempfile_in(&self.conf_dir)
            .map_err(|e| fail("temp file", e))?;
        tmp.write_all(conf::DROP_IN.as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| fail("write", e))?;
        tmp.persist(&path).map_err(|e| fail("rename", e.error))?;
        Ok(true)
    }
}

impl Multipath for MultipathTools {
    fn ensure_config(&self) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            // multipathd reads conf.d files ending in .conf only; the temp file is hidden.
            let wrote = self.write_drop_in()?;
            if wrote {
                self.multipathd(&["reconfigure"]).await?;
                tracing::info!(dir = %self.conf_dir.display(), "wrote the multipath drop-in and reconfigured multipathd");
            }
            Ok(wrote)
        })
    }

    fn assemble<'a>(&'a self, paths: &'a [Device]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let first = paths
                .first()
                .ok_or_else(|| Error::internal("no path to assemble a multipath map from"))?;
            self.run(false, &["-a", &first.path.to_string_lossy()])
                .await?;
            for path in paths {
                self.multipathd(&["add", "path", &path.name]).await?;
            }
            Ok(())
        })
    }

    fn map(&self, wwid: &str) -> Option<Device> {
        find_map(&self.sys, &map_node(wwid), wwid).map(|name| Device {
            name,
            path: map_node(wwid),
            udev_serial: None,
        })
    }

    fn node_ready(&self, map: &Device) -> bool {
        map.path.exists()
    }

    fn paths_of(&self, map: &Device) -> Vec<String> {
        slaves(&self.sys, &map.name)
    }

    fn remove_map<'a>(&'a self, wwid: &'a str) -> BoxFuture<'a, Result<Removal>> {
        Box::pin(async move {
            if find_map(&self.sys, &map_node(wwid), wwid).is_none() {
                return Ok(Removal::NotFound);
            }
            self.run(false, &["-f", wwid]).await?;
            if let Some(dm) = find_map(&self.sys, &map_node(wwid), wwid) {
                return Err(Error::internal(format!(
                    "multipath -f {wwid} succeeded but the map ({dm}) is still there"
                )));
            }
            Ok(Removal::Removed)
        })
    }

    fn forget<'a>(&'a self, disk: &'a Device) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.run(false, &["-w", &disk.path.to_string_lossy()])
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::command::{Expectation, ScriptedRunner};

    const WWID: &str = "360014055a0c1e0000004000800000000";

    fn tools(root: &Path, fake: Arc<ScriptedRunner>) -> MultipathTools {
        MultipathTools {
            runner: fake,
            multipath: "multipath".into(),
            multipathd: "multipathd".into(),
            sys: root.join("sys"),
            conf_dir: root.join("etc/multipath/conf.d"),
            timeout: Duration::from_secs(5),
        }
    }

    fn map_in_sysfs(sys: &Path, dm: &str, uuid: &str, slaves: &[&str]) {
        let dir = sys.join("class/block").join(dm);
        std::fs::create_dir_all(dir.join("dm")).unwrap();
        std::fs::write(dir.join("dm/uuid"), format!("{uuid}\n")).unwrap();
        for s in slaves {
            std::fs::create_dir_all(dir.join("slaves").join(s)).unwrap();
        }
    }

    #[tokio::test]
    async fn the_drop_in_is_written_once_and_multipathd_reconfigured_once() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(ScriptedRunner::new());
        fake.expect(Expectation::new(["multipathd", "reconfigure"]).stdout("ok\n"));
        let t = tools(dir.path(), fake.clone());
        assert!(t.ensure_config().await.unwrap());
        assert!(
            !t.ensure_config().await.unwrap(),
            "unchanged: nothing to do"
        );
        let written = std::fs::read_to_string(t.conf_dir.join("carve.conf")).unwrap();
        assert_eq!(written, conf::DROP_IN);
        std::fs::write(t.conf_dir.join("carve.conf"), "edited").unwrap();
        fake.expect(Expectation::new(["multipathd", "reconfigure"]).stdout("fail\n"));
        let err = t.ensure_config().await.unwrap_err();
        assert!(err.message().contains("fail"), "{err}");
        fake.finish();
    }

    #[tokio::test]
    async fn maps_are_found_by_wwid_only_and_removed_for_sure() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        map_in_sysfs(&sys, "dm-1", "LVM-abc", &["loop0"]);
        map_in_sysfs(&sys, "dm-5", &format!("mpath-{WWID}"), &["sdb", "sda"]);
        let fake = Arc::new(ScriptedRunner::new());
        let t = tools(dir.path(), fake.clone());
        let map = t.map(WWID).unwrap();
        assert_eq!(map.name, "dm-5");
        assert_eq!(
            map.path,
            PathBuf::from(format!("/dev/disk/by-id/dm-uuid-mpath-{WWID}"))
        );
        assert_eq!(t.paths_of(&map), ["sda", "sdb"]);
        assert!(t.map("36001405ffff").is_none());
        // multipath -f says it worked but the map stays (in use): an error, never "removed".
        fake.expect(Expectation::new(["multipath", "-f", WWID]));
        let err = t.remove_map(WWID).await.unwrap_err();
        assert!(err.message().contains("still there"), "{err}");
        fake.expect(
            Expectation::new(["multipath", "-f", WWID]).fails(1, format!("{WWID}: map in use\n")),
        );
        assert!(t.remove_map(WWID).await.is_err());
        std::fs::remove_dir_all(sys.join("class/block/dm-5")).unwrap();
        assert_eq!(t.remove_map(WWID).await.unwrap(), Removal::NotFound);
        fake.finish();
    }

    #[test]
    fn a_map_is_found_through_its_link_only_if_the_kernel_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let dev = dir.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        for name in ["dm-2", "dm-5", "sdc"] {
            std::fs::write(dev.join(name), "").unwrap();
        }
        map_in_sysfs(&sys, "dm-2", "LVM-abc", &["loop0"]);
        map_in_sysfs(&sys, "dm-5", &format!("mpath-{WWID}"), &["sda"]);
        let link = dir.path().join("by-id-link");
        // The link names the map: found through it.
        std::os::unix::fs::symlink(dev.join("dm-5"), &link).unwrap();
        assert_eq!(find_map(&sys, &link, WWID).as_deref(), Some("dm-5"));
        // A stale link naming another device-mapper device, or not one at all: the scan decides.
        for wrong in ["dm-2", "sdc"] {
            std::fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(dev.join(wrong), &link).unwrap();
            assert_eq!(
                find_map(&sys, &link, WWID).as_deref(),
                Some("dm-5"),
                "{wrong}"
            );
        }
        // No link: the scan finds the map; no map either: nothing.
        std::fs::remove_file(&link).unwrap();
        assert_eq!(find_map(&sys, &link, WWID).as_deref(), Some("dm-5"));
        std::fs::remove_dir_all(sys.join("class/block/dm-5")).unwrap();
        assert_eq!(find_map(&sys, &link, WWID), None);
    }

    #[tokio::test]
    async fn assembly_registers_the_wwid_then_adds_every_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(ScriptedRunner::new());
        fake.expect(
            Expectation::new(["multipath", "-a", "/dev/sda"])
                .stdout(format!("wwid '{WWID}' added\n")),
        );
        fake.expect(Expectation::new(["multipathd", "add", "path", "sda"]).stdout("ok\n"));
        fake.expect(Expectation::new(["multipathd", "add", "path", "sdb"]).stdout("fail\n"));
        let t = tools(dir.path(), fake.clone());
        let paths = [Device::from_name("sda"), Device::from_name("sdb")];
        assert!(t.assemble(&paths).await.is_err(), "a refused path fails");
        fake.finish();
    }
}
