//! What the storage side shows of a volume, read directly rather than through the plugins:
//! the LV as LVM reports it (size, existence, a checksum of all of it) and a block device's
//! size and signatures (blkid).

use crate::{Lab, run, run_ok};
use std::{
    io::{Seek, SeekFrom},
    path::Path,
};

/// The LV's size in bytes, as LVM reports it.
pub fn lv_size(lab: &Lab, id: &str) -> i64 {
    let out = run_ok(
        "lvs",
        &[
            "--noheadings",
            "--nosuffix",
            "--units",
            "b",
            "-o",
            "lv_size",
            &format!("{}/{id}", lab.vg),
        ],
    );
    out.trim().parse().expect("lv_size in bytes")
}

/// SHA-256 of the whole LV `id`, read after dropping caches (sha256sum: the debug-built hasher
/// is too slow under TCG).
pub fn lv_sha256(lab: &Lab, id: &str) -> String {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    let out = run_ok("sha256sum", &[&format!("/dev/{}/{id}", lab.vg)]);
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Whether LVM knows the LV.
pub fn lv_exists(lab: &Lab, id: &str) -> bool {
    run("lvs", &[&format!("{}/{id}", lab.vg)]).status.success()
}

/// A block device's size in bytes.
pub fn device_size(path: &Path) -> i64 {
    let mut file = std::fs::File::open(path).expect("open device");
    file.seek(SeekFrom::End(0))
        .expect("seek to end")
        .cast_signed()
}

/// One `blkid -p` tag of `device` (empty when it has none).
pub fn blkid(device: &Path, tag: &str) -> String {
    let out = run(
        "blkid",
        &["-p", "-o", "value", "-s", tag, &device.to_string_lossy()],
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
