//! The configfs operations the LIO code performs, counted in tests: each directory listed (one
//! plus one per entry), attribute read or written, `stat`, `mkdir`, `symlink` and `rmdir` goes
//! through here, so a test can prove how the work grows with the number of exports (see
//! csi-controller's `reconcile_tests.rs`, built with this crate's `testing` feature). In a normal
//! build the count is a no-op.
//!
//! Invariants: counts are kept per path and summed under a root, so tests running at once on
//! their own tempdirs never see each other's operations.

use std::path::Path;

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
