//! Test doubles for the OS layers: an in-memory initiator and disk, a configurable probe and a
//! recording mounter that keeps a mount table (youki-style: tests assert on the calls made).
//!
//! One file per layer: `initiator`, `devices`, `mounts` (probe and mounter), `multipath`; all
//! re-exported here, so tests name them `testing::X`.

mod devices;
mod initiator;
mod mounts;
mod multipath;

pub use devices::*;
pub use initiator::*;
pub use mounts::*;
pub use multipath::*;

use std::path::PathBuf;

/// Paths for a test: a temp dir with `stage/` and `pods/` (canonical, so no symlink above).
pub fn dirs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(root.join("stage")).unwrap();
    std::fs::create_dir_all(root.join("pods")).unwrap();
    (dir, root)
}
