//! The configfs backend's index of HBAs: which `core/iblock_<N>` holds each block storage
//! object and which HBA indexes are taken, read from configfs once and then kept up to date as
//! the backend creates and removes objects, so exporting N volumes does O(N) configfs work in
//! all instead of listing every HBA for each (quadratic).
//!
//! Invariants: read and changed only under the backend's HBA lock (the lock that chooses a new
//! object's HBA); it is a cache, never trusted blindly: an entry is checked with one `stat`
//! before use (a stale one, an object removed behind the controller's back, makes the backend
//! read the index again), a new HBA is made with an exclusive `mkdir` (an index taken behind
//! its back is skipped, never shared), and the backend drops it after any failed change and on
//! a resync (SIGHUP, `--lvm-resync-interval`), which is how an object created by hand is seen.

use super::{counted::is_dir, layout::Layout, state::entries};
use std::collections::{BTreeSet, HashMap};

/// Storage objects by name and the HBA indexes in use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HbaIndex {
    /// Object name → its `iblock_<N>` HBA directory name.
    objects: HashMap<String, String>,
    /// Every `N` of a `core/<plugin>_<N>` directory.
    used: BTreeSet<u32>,
}

/// The `N` of an HBA directory named `<plugin>_<N>`.
pub fn hba_number(name: &str) -> Option<u32> {
    name.rsplit_once('_')?.1.parse().ok()
}

impl HbaIndex {
    /// Reads `core/` once: one listing of it and one of each `iblock_*` HBA.
    pub fn read(layout: &Layout) -> Self {
        let mut index = Self::default();
        for hba in entries(&layout.core()) {
            if let Some(n) = hba_number(&hba) {
                index.used.insert(n);
            }
            if !hba.starts_with("iblock_") {
                continue;
            }
            let dir = layout.core().join(&hba);
            for name in entries(&dir) {
                if is_dir(&dir.join(&name)) {
                    index.objects.entry(name).or_insert_with(|| hba.clone());
                }
            }
        }
        index
    }

    /// The HBA directory name of the object `name`, if indexed.
    pub fn object(&self, name: &str) -> Option<&str> {
        self.objects.get(name).map(String::as_str)
    }

    /// The lowest HBA index not in use (rtslib's choice).
    pub fn free(&self) -> u32 {
        (0..=u32::MAX).find(|n| !self.used.contains(n)).unwrap_or(0)
    }

    /// Marks HBA index `n` in use (made now, or found taken).
    pub fn take(&mut self, n: u32) {
        self.used.insert(n);
    }

    /// Records that the object `name` now lives in HBA index `n`.
    pub fn insert(&mut self, name: &str, n: u32) {
        self.used.insert(n);
        self.objects.insert(name.to_string(), format!("iblock_{n}"));
    }

    /// Records that the object `name` is gone, and its HBA with it if `hba_removed`.
    pub fn remove(&mut self, name: &str, hba_removed: bool) {
        if let Some(hba) = self.objects.remove(name)
            && hba_removed
            && let Some(n) = hba_number(&hba)
        {
            self.used.remove(&n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_and_every_plugins_indexes_and_hands_out_the_lowest_free() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        for path in [
            "core/iblock_0/csi-a",
            "core/fileio_1/f",
            "core/iblock_3/csi-b",
        ] {
            std::fs::create_dir_all(layout.root().join(path)).unwrap();
        }
        let mut index = HbaIndex::read(&layout);
        assert_eq!(index.object("csi-a"), Some("iblock_0"));
        assert_eq!(index.object("csi-b"), Some("iblock_3"));
        assert_eq!(index.object("f"), None, "only iblock objects");
        assert_eq!(index.free(), 2);
        index.insert("csi-c", 2);
        assert_eq!(index.free(), 4);
        index.remove("csi-a", true);
        assert_eq!((index.free(), index.object("csi-a")), (0, None));
        index.remove("csi-b", false);
        index.take(0);
        assert_eq!(index.free(), 4, "an HBA kept (shared) stays in use");
    }
}
