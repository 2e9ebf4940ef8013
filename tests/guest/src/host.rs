//! What the node machine itself shows, read directly: mounts (`/proc/self/mountinfo`), sysfs
//! attributes, whether a device or file takes a write.

use std::{io::Write, path::Path};

/// The mount at a path, from the last mountinfo line for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount source (a device path).
    pub source: String,
    /// Per-mount options (`rw,relatime`, ...).
    pub options: String,
    /// Superblock options (`ro,...` when the filesystem itself is read-only).
    pub super_options: String,
}

/// The mount at `path`, if any (the topmost one).
pub fn mount_at(path: &Path) -> Option<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let path = path.to_string_lossy();
    text.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&path.as_ref())).then(|| {
            let dash = f
                .iter()
                .position(|x| *x == "-")
                .expect("mountinfo separator");
            Mount {
                source: f[dash + 2].to_string(),
                options: f[5].to_string(),
                super_options: f[dash + 3].to_string(),
            }
        })
    })
}

/// A sysfs (or procfs) attribute, trimmed; panics if it cannot be read.
pub fn sysfs(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

/// Whether writing (and syncing) 4 KiB at the start of `path` fails, or it cannot even be
/// opened for writing.
pub fn write_fails(path: &Path) -> bool {
    let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) else {
        return true;
    };
    f.write_all(&[0xa5; 4096])
        .and_then(|()| f.sync_all())
        .is_err()
}

/// Writes dirty pages out and drops the page cache (`/proc/sys/vm/drop_caches`, 3: page cache,
/// dentries and inodes), so the next read of a file comes from its device.
pub fn drop_caches() {
    crate::run_ok("sync", &[]);
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop_caches");
}
