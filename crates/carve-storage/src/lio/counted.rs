//! The configfs operations the LIO code performs (writes, links, reads), counted in tests: each directory listed (one
//! plus one per entry), attribute read or written, `stat`, `mkdir`, `symlink` and `rmdir` goes
//! through here, so a test can prove how the work grows with the number of exports (see
//! csi-controller's `reconcile_tests.rs`, built with this crate's `testing` feature). In a normal
//! build the count is a no-op.
//!
//! Invariants: counts are kept per path and summed under a root, so tests running at once on
//! their own tempdirs never see each other's operations.

use super::state::entries;
use csi_common::{Error, Result};
use std::{fs, io, path::Path};
use tracing::debug;

/// Records `n` operations on `path` (tests only).
#[inline]
pub fn touched(path: &Path, n: u64) {
    #[cfg(any(test, feature = "testing"))]
    tally::add(path, n);
    #[cfg(not(any(test, feature = "testing")))]
    let _ = (path, n);
}

/// `path.is_dir()`, counted.
pub fn is_dir(path: &Path) -> bool {
    touched(path, 1);
    path.is_dir()
}

/// `path.exists()`, counted.
pub fn exists(path: &Path) -> bool {
    touched(path, 1);
    path.exists()
}

/// Writes `value` to the attribute `path` (logged).
pub fn write(path: &Path, value: &str) -> Result<()> {
    debug!(path = %path.display(), value, "configfs write");
    touched(path, 1);
    fs::write(path, value.as_bytes()).map_err(|e| io_error("write", path, &e))
}

/// Writes a secret `value` to the attribute `path` (never logged).
pub fn write_secret(path: &Path, value: &str) -> Result<()> {
    touched(path, 1);
    fs::write(path, value.as_bytes()).map_err(|e| io_error("write", path, &e))
}

/// Links `link` to `dest`; an existing link is success.
pub fn symlink(dest: &Path, link: &Path) -> Result<()> {
    touched(link, 1);
    match std::os::unix::fs::symlink(dest, link) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error("symlink", link, &e)),
    }
}

/// Removes every symlink in `dir`.
pub fn unlink_all_links(dir: &Path) -> Result<()> {
    for name in entries(dir) {
        let path = dir.join(&name);
        touched(&path, 1);
        if path.is_symlink() {
            fs::remove_file(&path).map_err(|e| io_error("unlink", &path, &e))?;
        }
    }
    Ok(())
}

/// An I/O failure on `path` as an internal error naming `what` was done.
pub fn io_error(what: &str, path: &Path, e: &io::Error) -> Error {
    Error::internal(format!("configfs: {what} {}: {e}", path.display()))
}

#[cfg(any(test, feature = "testing"))]
pub mod tally {
    //! The per-path counts.
    use std::{
        collections::HashMap,
        path::{Path, PathBuf},
        sync::Mutex,
    };

    static COUNTS: Mutex<Option<HashMap<PathBuf, u64>>> = Mutex::new(None);

    pub(super) fn add(path: &Path, n: u64) {
        let mut counts = COUNTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts
            .get_or_insert_with(HashMap::new)
            .entry(path.to_path_buf())
            .or_default() += n;
    }

    /// The operations counted so far on paths under `root`.
    pub fn under(root: &Path) -> u64 {
        let counts = COUNTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts
            .iter()
            .flatten()
            .filter(|(path, _)| path.starts_with(root))
            .map(|(_, n)| n)
            .sum()
    }
}
