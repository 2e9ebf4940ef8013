//! The fake content probe and the recording mounter that keeps a mount table.

use crate::{
    filesystem::{FsProbe, Probe},
    mount::{FsMount, MountInfo, Mounter},
};
use csi_common::{Error, Result, command::BoxFuture};
use std::{path::Path, sync::Mutex};

/// A probe answering a fixed result.
#[derive(Debug)]
pub struct FakeProbe {
    /// What `probe` answers (`Err` = probe error).
    pub result: Mutex<std::result::Result<Probe, String>>,
    /// Whether the read check passes.
    pub read_ok: Mutex<bool>,
}

impl FakeProbe {
    /// A probe answering `result`.
    pub fn new(result: std::result::Result<Probe, String>) -> Self {
        Self {
            result: Mutex::new(result),
            read_ok: Mutex::new(true),
        }
    }
}

impl FsProbe for FakeProbe {
    fn probe<'a>(&'a self, _device: &'a Path) -> BoxFuture<'a, Result<Probe>> {
        let r = self.result.lock().unwrap().clone().map_err(Error::internal);
        Box::pin(std::future::ready(r))
    }

    fn read_check<'a>(&'a self, _device: &'a Path) -> BoxFuture<'a, Result<()>> {
        let ok = *self.read_ok.lock().unwrap();
        Box::pin(std::future::ready(if ok {
            Ok(())
        } else {
            Err(Error::internal("EIO"))
        }))
    }
}

/// A mounter that records calls and keeps a mount table.
#[derive(Debug, Default)]
pub struct RecordingMounter {
    /// The mount table.
    pub table: Mutex<Vec<MountInfo>>,
    /// Calls, e.g. `mount_fs /dev/sdb /stage ext4`, `bind /stage /pod ro`, `unmount /pod`.
    pub calls: Mutex<Vec<String>>,
}

impl RecordingMounter {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        major: u32,
        minor: u32,
        root: &str,
        at: &Path,
        fs_type: &str,
        source: &str,
        ro: bool,
    ) {
        let mut table = self.table.lock().unwrap();
        let id = 100 + u32::try_from(table.len()).unwrap();
        table.push(MountInfo {
            id,
            major,
            minor,
            root: root.into(),
            mount_point: at.into(),
            options: vec![if ro { "ro" } else { "rw" }.into()],
            fs_type: fs_type.into(),
            source: source.into(),
            super_options: vec!["rw".into()],
            shared: None,
            master: None,
        });
    }
}

impl Mounter for RecordingMounter {
    fn table(&self) -> Result<Vec<MountInfo>> {
        Ok(self.table.lock().unwrap().clone())
    }

    fn mount_fs(&self, spec: &FsMount<'_>) -> Result<()> {
        let (device, target, fs_type) = (spec.device, spec.target, spec.fs_type);
        let options = spec.options;
        self.calls.lock().unwrap().push(format!(
            "mount_fs {} {} {fs_type} {}",
            device.display(),
            target.display(),
            options.data
        ));
        self.push(
            8,
            16,
            "/",
            target,
            fs_type,
            &device.to_string_lossy(),
            options.flags.contains(nix::mount::MsFlags::MS_RDONLY),
        );
        Ok(())
    }

    fn bind(&self, source: &Path, target: &Path, readonly: bool) -> Result<()> {
        self.calls.lock().unwrap().push(format!(
            "bind {} {} {}",
            source.display(),
            target.display(),
            if readonly { "ro" } else { "rw" }
        ));
        let src = self
            .table
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m.mount_point == source)
            .cloned();
        if let Some(m) = src {
            self.push(
                m.major, m.minor, "/", target, &m.fs_type, &m.source, readonly,
            );
        } else {
            let name = source.file_name().unwrap().to_string_lossy();
            self.push(
                0,
                5,
                &format!("/{name}"),
                target,
                "devtmpfs",
                "udev",
                readonly,
            );
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("unmount {}", target.display()));
        let mut table = self.table.lock().unwrap();
        let pos = table
            .iter()
            .rposition(|m| m.mount_point == target)
            .ok_or_else(|| Error::internal("EINVAL: not mounted"))?;
        table.remove(pos);
        Ok(())
    }
}
