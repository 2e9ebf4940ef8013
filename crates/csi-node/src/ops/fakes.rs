//! Test doubles for the OS layers: an in-memory initiator and disk, a configurable probe and a
//! recording mounter that keeps a mount table (youki-style: tests assert on the calls made).

use crate::{
    device::{Device, DeviceLocator, Expected},
    filesystem::{FsProbe, Probe},
    iscsi::{Initiator, Login, Removal, Session},
    mount::{MountInfo, MountOptions, Mounter},
    multipath::Multipath,
};
use csi_common::{Error, Result, command::BoxFuture, contract::Chap, ids::Iqn};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

/// The disk a fake session to the first portal (`127.0.0.1:3260`) attaches.
pub const DISK: &str = "sdb";
/// The disk a fake session to any other portal attaches.
pub const DISK2: &str = "sdc";

/// The disk a fake session through `portal` attaches.
pub fn disk_for(portal: SocketAddr) -> &'static str {
    if portal == "127.0.0.1:3260".parse().unwrap() {
        DISK
    } else {
        DISK2
    }
}

fn default_portal() -> SocketAddr {
    "127.0.0.1:3260".parse().unwrap()
}

/// An initiator with sessions in memory.
#[derive(Debug, Default)]
pub struct FakeInitiator {
    /// Target IQNs with a node record at `127.0.0.1:3260`, and whether CHAP was set.
    pub records: Mutex<Vec<(String, bool)>>,
    /// Node records at other portals.
    pub other_records: Mutex<Vec<(String, SocketAddr)>>,
    /// The replacement timeout each prepare wrote (`None`: the record's default).
    pub replacement_timeouts: Mutex<Vec<Option<u32>>>,
    /// Portals whose login fails (unreachable).
    pub down: Mutex<Vec<SocketAddr>>,
    /// Live sessions.
    pub sessions: Mutex<Vec<Session>>,
    /// Error the next login returns.
    pub login_error: Mutex<Option<Error>>,
    /// Every call, in order.
    pub calls: Mutex<Vec<String>>,
    /// Shared with [`FakeDevices::lun_hidden`]: a login attaches no disk while set, and a
    /// session rescan clears it (manual scan mode, or a disk deleted behind the session).
    pub lun_hidden: Arc<Mutex<bool>>,
    /// A rescan finds nothing (the LUN is really gone from the target).
    pub rescan_blind: Mutex<bool>,
}

impl FakeInitiator {
    fn call(&self, c: String) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Initiator for FakeInitiator {
    fn prepare<'a>(
        &'a self,
        target: &'a Iqn,
        portal: SocketAddr,
        chap: Option<&'a Chap>,
        replacement_timeout: Option<u32>,
    ) -> BoxFuture<'a, Result<()>> {
        self.replacement_timeouts
            .lock()
            .unwrap()
            .push(replacement_timeout);
        if portal != default_portal() {
            self.call(format!("prepare {target} at {portal}"));
            let mut others = self.other_records.lock().unwrap();
            others.retain(|(t, p)| !(t == target.as_str() && *p == portal));
            others.push((target.to_string(), portal));
            return Box::pin(std::future::ready(Ok(())));
        }
        self.call(format!("prepare {target}"));
        let mut records = self.records.lock().unwrap();
        records.retain(|(t, _)| t != target.as_str());
        records.push((target.to_string(), chap.is_some()));
        Box::pin(std::future::ready(Ok(())))
    }

    fn login<'a>(&'a self, target: &'a Iqn, portal: SocketAddr) -> BoxFuture<'a, Result<Login>> {
        if portal == default_portal() {
            self.call(format!("login {target}"));
        } else {
            self.call(format!("login {target} at {portal}"));
        }
        if let Some(e) = self.login_error.lock().unwrap().take() {
            return Box::pin(std::future::ready(Err(e)));
        }
        if self.down.lock().unwrap().contains(&portal) {
            return Box::pin(std::future::ready(Err(Error::internal(format!(
                "iscsi login: connection to {portal} refused"
            )))));
        }
        let mut sessions = self.sessions.lock().unwrap();
        let result = if sessions
            .iter()
            .any(|s| s.target == target.as_str() && s.portal.is_none_or(|p| p == portal))
        {
            Login::AlreadyLoggedIn
        } else {
            let sid = sessions.iter().map(|s| s.sid).max().unwrap_or(0) + 1;
            sessions.push(Session {
                sid,
                target: target.to_string(),
                iface: "default".into(),
                state: "LOGGED_IN".into(),
                portal: Some(portal),
                disks: if *self.lun_hidden.lock().unwrap() {
                    vec![]
                } else {
                    vec![(0, disk_for(portal).into())]
                },
            });
            Login::LoggedIn
        };
        Box::pin(std::future::ready(Ok(result)))
    }

    fn logout<'a>(&'a self, target: &'a Iqn, portal: SocketAddr) -> BoxFuture<'a, Result<Removal>> {
        if portal == default_portal() {
            self.call(format!("logout {target}"));
        } else {
            self.call(format!("logout {target} at {portal}"));
        }
        let mut sessions = self.sessions.lock().unwrap();
        let before = sessions.len();
        sessions.retain(|s| !(s.target == target.as_str() && s.portal.is_none_or(|p| p == portal)));
        let r = if sessions.len() < before {
            Removal::Removed
        } else {
            Removal::NotFound
        };
        Box::pin(std::future::ready(Ok(r)))
    }

    fn delete_record<'a>(
        &'a self,
        target: &'a Iqn,
        portal: SocketAddr,
    ) -> BoxFuture<'a, Result<Removal>> {
        if portal != default_portal() {
            self.call(format!("delete_record {target} at {portal}"));
            let mut others = self.other_records.lock().unwrap();
            let before = others.len();
            others.retain(|(t, p)| !(t == target.as_str() && *p == portal));
            let r = if others.len() < before {
                Removal::Removed
            } else {
                Removal::NotFound
            };
            return Box::pin(std::future::ready(Ok(r)));
        }
        self.call(format!("delete_record {target}"));
        let mut records = self.records.lock().unwrap();
        let before = records.len();
        records.retain(|(t, _)| t != target.as_str());
        let r = if records.len() < before {
            Removal::Removed
        } else {
            Removal::NotFound
        };
        Box::pin(std::future::ready(Ok(r)))
    }

    fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<(String, SocketAddr)> {
        let records = self.records.lock().unwrap();
        let mut all: Vec<(String, SocketAddr)> = records
            .iter()
            .map(|(t, _)| (t.clone(), default_portal()))
            .collect();
        all.extend(self.other_records.lock().unwrap().iter().cloned());
        all
    }

    fn rescan_session(&self, sid: u32) -> BoxFuture<'_, Result<String>> {
        self.call(format!("rescan session {sid}"));
        if *self.rescan_blind.lock().unwrap() {
            return Box::pin(std::future::ready(Ok(format!("host{sid}"))));
        }
        *self.lun_hidden.lock().unwrap() = false;
        for s in self.sessions.lock().unwrap().iter_mut() {
            if s.sid == sid && s.disks.is_empty() {
                let disk = s.portal.map_or(DISK, disk_for);
                s.disks.push((0, disk.into()));
            }
        }
        Box::pin(std::future::ready(Ok(format!("host{sid}"))))
    }
}

/// One disk, `/dev/sdb`, with a settable serial.
#[derive(Debug)]
pub struct FakeDevices {
    /// The serial the disk reports.
    pub serial: Mutex<String>,
    /// Whether the disk exists.
    pub present: Mutex<bool>,
    /// The size the disk reports.
    pub size: Mutex<u64>,
    /// The size a rescan reveals (the LV was grown on the target), if any.
    pub size_after_rescan: Mutex<Option<u64>>,
    /// Calls: `flush sdb`, `delete sdb`, `rescan sdb`.
    pub calls: Mutex<Vec<String>>,
    /// Error the next flush returns.
    pub flush_error: Mutex<Option<Error>>,
    /// Read-only views that exist (all are `dm-9`).
    pub views: Mutex<Vec<String>>,
    /// While set, [`DeviceLocator::wait_for`] times out (the session has no disk).
    pub lun_hidden: Arc<Mutex<bool>>,
    /// Disks other than [`DISK`] that were deleted.
    pub deleted: Mutex<Vec<String>>,
    /// The WWID the disks report (default: the one LIO derives from the serial).
    pub wwid: Mutex<Option<String>>,
}

impl FakeDevices {
    /// A disk with `serial`.
    pub fn new(serial: &str) -> Self {
        Self {
            serial: Mutex::new(serial.into()),
            present: Mutex::new(true),
            size: Mutex::new(64 << 20),
            size_after_rescan: Mutex::default(),
            calls: Mutex::default(),
            flush_error: Mutex::default(),
            views: Mutex::default(),
            lun_hidden: Arc::default(),
            deleted: Mutex::default(),
            wwid: Mutex::default(),
        }
    }
}

impl DeviceLocator for FakeDevices {
    fn wait_for<'a>(
        &'a self,
        expected: &'a Expected,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Device>> {
        if *self.lun_hidden.lock().unwrap() {
            self.calls.lock().unwrap().push("wait timed out".into());
            return Box::pin(std::future::ready(Err(Error::deadline_exceeded(format!(
                "disk did not appear within {timeout:?}"
            )))));
        }
        let name = disk_for(expected.portal);
        if name == DISK {
            *self.present.lock().unwrap() = true;
        } else {
            self.deleted.lock().unwrap().retain(|d| d != name);
        }
        let mut d = Device::from_name(name);
        d.udev_serial = Some(self.serial.lock().unwrap().clone());
        Box::pin(std::future::ready(Ok(d)))
    }

    fn kernel_serial(&self, _device: &Device) -> Result<String> {
        Ok(self.serial.lock().unwrap().clone())
    }

    fn kernel_wwid(&self, _device: &Device) -> Result<String> {
        let wwid = self.wwid.lock().unwrap().clone().unwrap_or_else(|| {
            crate::device::matcher::expected_wwid(&self.serial.lock().unwrap()).unwrap()
        });
        Ok(format!("naa.{}", &wwid[1..]))
    }

    fn size_bytes(&self, _device: &Device) -> Result<u64> {
        Ok(*self.size.lock().unwrap())
    }

    fn exists(&self, device: &Device) -> bool {
        if device.name == DISK {
            *self.present.lock().unwrap()
        } else {
            !self.deleted.lock().unwrap().contains(&device.name)
        }
    }

    fn flush<'a>(&'a self, device: &'a Device) -> BoxFuture<'a, Result<()>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("flush {}", device.name));
        let result = match self.flush_error.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        };
        Box::pin(std::future::ready(result))
    }

    fn delete(&self, device: &Device) -> Result<Removal> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delete {}", device.name));
        if device.name == DISK {
            *self.present.lock().unwrap() = false;
        } else {
            self.deleted.lock().unwrap().push(device.name.clone());
        }
        Ok(Removal::Removed)
    }

    fn rescan<'a>(&'a self, device: &'a Device) -> BoxFuture<'a, Result<()>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("rescan {}", device.name));
        if let Some(size) = *self.size_after_rescan.lock().unwrap() {
            *self.size.lock().unwrap() = size;
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn readonly_view<'a>(
        &'a self,
        device: &'a Device,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Device>> {
        let mut views = self.views.lock().unwrap();
        if !views.iter().any(|v| v == name) {
            views.push(name.to_string());
            self.calls
                .lock()
                .unwrap()
                .push(format!("view {name} of {}", device.name));
        }
        Box::pin(std::future::ready(Ok(Device::from_name("dm-9"))))
    }

    fn remove_readonly_view<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Removal>> {
        let mut views = self.views.lock().unwrap();
        let before = views.len();
        views.retain(|v| v != name);
        let r = if views.len() < before {
            self.calls
                .lock()
                .unwrap()
                .push(format!("remove view {name}"));
            Removal::Removed
        } else {
            Removal::NotFound
        };
        Box::pin(std::future::ready(Ok(r)))
    }
}

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
        let id = 100 + table.len() as u32;
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

    fn mount_fs(
        &self,
        device: &Path,
        target: &Path,
        fs_type: &str,
        options: &MountOptions,
    ) -> Result<()> {
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
        match src {
            Some(m) => self.push(
                m.major, m.minor, "/", target, &m.fs_type, &m.source, readonly,
            ),
            None => {
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

/// Paths for a test: a temp dir with `stage/` and `pods/` (canonical, so no symlink above).
pub fn dirs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(root.join("stage")).unwrap();
    std::fs::create_dir_all(root.join("pods")).unwrap();
    (dir, root)
}

/// multipathd in memory: maps by WWID (all named `dm-7`), with their paths.
#[derive(Debug, Default)]
pub struct FakeMultipath {
    /// The WWID every assembled path has.
    pub wwid: String,
    /// Maps: WWID and paths.
    pub maps: Mutex<Vec<(String, Vec<String>)>>,
    /// Every call, in order.
    pub calls: Mutex<Vec<String>>,
    /// multipathd is not running: assembling fails.
    pub down: Mutex<bool>,
    /// Error the next map removal returns (the map stays).
    pub remove_error: Mutex<Option<Error>>,
}

impl FakeMultipath {
    /// multipathd whose paths all have `wwid`.
    pub fn new(wwid: &str) -> Self {
        Self {
            wwid: wwid.into(),
            ..Self::default()
        }
    }

    fn call(&self, c: String) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Multipath for FakeMultipath {
    fn ensure_config(&self) -> BoxFuture<'_, Result<bool>> {
        self.call("ensure_config".into());
        Box::pin(std::future::ready(Ok(false)))
    }

    fn assemble<'a>(&'a self, paths: &'a [Device]) -> BoxFuture<'a, Result<()>> {
        let names: Vec<String> = paths.iter().map(|p| p.name.clone()).collect();
        self.call(format!("assemble {}", names.join(",")));
        if *self.down.lock().unwrap() {
            return Box::pin(std::future::ready(Err(Error::unavailable(
                "multipathd is not running",
            ))));
        }
        let mut maps = self.maps.lock().unwrap();
        match maps.iter_mut().find(|(w, _)| *w == self.wwid) {
            Some((_, members)) => {
                for n in names {
                    if !members.contains(&n) {
                        members.push(n);
                    }
                }
            }
            None => maps.push((self.wwid.clone(), names)),
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn map(&self, wwid: &str) -> Option<Device> {
        let maps = self.maps.lock().unwrap();
        maps.iter().any(|(w, _)| w == wwid).then(|| Device {
            name: "dm-7".into(),
            path: crate::multipath::tools::map_node(wwid),
            udev_serial: None,
        })
    }

    fn node_ready(&self, _map: &Device) -> bool {
        true
    }

    fn paths_of(&self, _map: &Device) -> Vec<String> {
        let maps = self.maps.lock().unwrap();
        maps.first().map(|(_, p)| p.clone()).unwrap_or_default()
    }

    fn remove_map<'a>(&'a self, wwid: &'a str) -> BoxFuture<'a, Result<Removal>> {
        self.call(format!("remove_map {wwid}"));
        if let Some(e) = self.remove_error.lock().unwrap().take() {
            return Box::pin(std::future::ready(Err(e)));
        }
        let mut maps = self.maps.lock().unwrap();
        let before = maps.len();
        maps.retain(|(w, _)| w != wwid);
        let r = if maps.len() < before {
            Removal::Removed
        } else {
            Removal::NotFound
        };
        Box::pin(std::future::ready(Ok(r)))
    }

    fn forget<'a>(&'a self, disk: &'a Device) -> BoxFuture<'a, Result<()>> {
        self.call(format!("forget {}", disk.name));
        Box::pin(std::future::ready(Ok(())))
    }
}
