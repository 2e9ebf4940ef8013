//! The fake multipathd: maps by WWID, with their paths.

use crate::{device::Device, iscsi::Removal, multipath::Multipath};
use csi_common::{Error, Result, command::BoxFuture};
use std::sync::Mutex;

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
