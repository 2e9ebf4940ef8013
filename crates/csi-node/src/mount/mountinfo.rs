//! Parsing `/proc/self/mountinfo` (proc(5)): the one view of what is mounted where.
//!
//! Invariants: mount points and sources are unescaped (`\040` → space); a line that does not
//! parse fails the whole read (a half-read table could hide a mount and make a caller believe
//! a teardown already happened). Later entries shadow earlier ones at the same mount point.

use csi_common::{Error, Result};
use std::path::{Path, PathBuf};

/// One mount, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount id.
    pub id: u32,
    /// Device number of the filesystem (`major:minor`).
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// Path inside the filesystem that is the root of this mount (`/` or a bind source).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`, `ro`, `nosuid`, ...).
    pub options: Vec<String>,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount source (device path or pseudo name).
    pub source: String,
    /// Superblock options (`rw`/`ro`, `errors=remount-ro`, ...): the filesystem's own state, which
    /// turns `ro` when ext4 remounts itself read-only after an error.
    pub super_options: Vec<String>,
    /// Peer group this mount shares mount and unmount events with (`shared:N`).
    pub shared: Option<u32>,
    /// Peer group this mount receives events from (`master:N`).
    pub master: Option<u32>,
}

impl MountInfo {
    /// Whether this mount is read-only.
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }

    /// Whether the filesystem itself (not just this mount) is read-only.
    pub fn super_read_only(&self) -> bool {
        self.super_options.iter().any(|o| o == "ro")
    }

    /// Whether unmounting `other` (a mount in some namespace) also unmounts this one, through
    /// mount propagation: it is a peer of `other` or a slave of `other`'s peer group
    /// (sharedsubtree.rst).
    pub fn follows(&self, other: &MountInfo) -> bool {
        other
            .shared
            .is_some_and(|g| self.shared == Some(g) || self.master == Some(g))
    }
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    csi_common::escape::unescape(field, b'\\', 3, 8)
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let id = l.next()?.parse().ok()?;
    let _parent = l.next()?;
    let (major, minor) = l.next()?.split_once(':')?;
    let root = unescape(l.next()?);
    let mount_point = PathBuf::from(unescape(l.next()?));
    let options = l.next()?.split(',').map(str::to_string).collect();
    let (mut shared, mut master) = (None, None);
    for tag in l {
        if let Some(g) = tag.strip_prefix("shared:") {
            shared = g.parse().ok();
        } else if let Some(g) = tag.strip_prefix("master:") {
            master = g.parse().ok();
        }
    }
    let mut r = right.split(' ');
    let fs_type = r.next()?.to_string();
    let source = unescape(r.next()?);
    let super_options = r
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::to_string)
        .collect();
    Some(MountInfo {
        id,
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root,
        mount_point,
        options,
        fs_type,
        source,
        super_options,
        shared,
        master,
    })
}

/// Parses the whole table.
pub fn parse(text: &str) -> Result<Vec<MountInfo>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            parse_line(l).ok_or_else(|| Error::internal(format!("unparsable mountinfo line: {l}")))
        })
        .collect()
}

/// The mount visible at `path` (the last one stacked there), if `path` is a mount point.
pub fn mounted_at<'a>(table: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    table.iter().rev().find(|m| m.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../../tests/fixtures/node/mountinfo.txt");

    #[test]
    fn parses_the_captured_guest_table() {
        let table = parse(FIXTURE).unwrap();
        let stage = mounted_at(&table, Path::new("/stage/v1")).expect("staging mount");
        assert_eq!(stage.fs_type, "ext4");
        assert!(stage.source.starts_with("/dev/sd"), "{}", stage.source);
        assert_eq!(stage.root, "/");
        assert!(!stage.read_only());
        let pod = mounted_at(&table, Path::new("/pods/p1")).expect("bind mount");
        assert_eq!((pod.major, pod.minor), (stage.major, stage.minor));
        assert!(pod.read_only(), "remounted ro");
        let blk = mounted_at(&table, Path::new("/pods/blk1")).expect("block bind");
        assert_eq!(blk.fs_type, "devtmpfs");
        assert!(blk.root.starts_with("/sd"), "{}", blk.root);
        assert!(mounted_at(&table, Path::new("/stage")).is_none());
    }

    #[test]
    fn unescapes_spaces_and_refuses_garbage() {
        let line = "36 25 8:16 / /mnt/a\\040b rw,relatime shared:1 - ext4 /dev/sdb rw\n";
        let table = parse(line).unwrap();
        assert_eq!(table[0].mount_point, Path::new("/mnt/a b"));
        assert_eq!((table[0].major, table[0].minor), (8, 16));
        assert!(parse("36 25 8:16 /\n").is_err());
    }

    #[test]
    fn super_options_and_propagation_groups() {
        let text = "36 25 8:16 / /s rw,relatime shared:7 - ext4 /dev/sdb ro,errors=remount-ro\n\
                    37 25 8:16 / /s rw,relatime master:7 - ext4 /dev/sdb rw\n\
                    38 25 8:16 / /s rw,relatime - ext4 /dev/sdb rw\n";
        let t = parse(text).unwrap();
        assert!(t[0].super_read_only() && !t[0].read_only());
        assert_eq!((t[0].shared, t[1].master), (Some(7), Some(7)));
        assert!(t[0].follows(&t[0]) && t[1].follows(&t[0]));
        assert!(!t[2].follows(&t[0]), "a private copy stays mounted");
        assert!(!t[0].follows(&t[2]));
    }
}
