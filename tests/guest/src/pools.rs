//! LVM fixtures a scenario makes for itself and removes when done: a thin pool in the lab's
//! volume group, or a whole volume group on a loop device (so a new LV reuses a deleted one's
//! extents). Each is removed on drop, after the driver that uses it is gone.

use crate::{Lab, run, run_ok};

/// A thin pool of `size` in the lab's VG, removed on drop (after the driver is gone).
#[derive(Debug)]
pub struct Pool {
    vg: String,
    /// Its LV name.
    pub name: String,
}

impl Pool {
    /// Creates it (replacing a leftover of the same name), zeroing new chunks if `zero`.
    pub fn create(lab: &Lab, name: &str, size: &str, zero: bool) -> Self {
        let _ = run("lvremove", &["--yes", &format!("{}/{name}", lab.vg)]);
        lvcreate_thin_pool(&lab.vg, name, size, zero);
        Self {
            vg: lab.vg.clone(),
            name: name.to_string(),
        }
    }

    /// `lab` with this pool as its thin pool.
    pub fn lab(&self, lab: &Lab) -> Lab {
        let mut lab = lab.clone();
        lab.pool.clone_from(&self.name);
        lab
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = run(
            "lvremove",
            &["--yes", &format!("{}/{}", self.vg, self.name)],
        );
    }
}

/// A volume group of its own on a loop device (so a new LV reuses a deleted one's extents),
/// with a zeroing thin pool named `pool`; removed on drop.
#[derive(Debug)]
pub struct OwnVg {
    /// The volume group's name.
    pub vg: String,
    loop_dev: String,
    image: String,
}

impl OwnVg {
    /// Creates the VG `name` on a loop device of `size` and its thin pool `pool` of size `pool`
    /// (sizes as lvcreate takes them, e.g. `64m`).
    pub fn create(name: &str, size: &str, pool: &str) -> Self {
        Self::create_with(name, size, pool, &[])
    }

    /// [`OwnVg::create`] on a PV with a 60 KiB metadata area (`pvcreate --metadatasize 16k
    /// --dataalignment 64k`: LVM extends the area up to the first extent), which a few dozen
    /// volumes fill.
    pub fn with_small_metadata_area(name: &str, size: &str, pool: &str) -> Self {
        Self::create_with(
            name,
            size,
            pool,
            &["--metadatasize", "16k", "--dataalignment", "64k"],
        )
    }

    fn create_with(name: &str, size: &str, pool: &str, pvcreate: &[&str]) -> Self {
        if run("vgs", &[name]).status.success() {
            // Left by a scenario that failed before its drop could remove it.
            let removed = run("vgremove", &["--yes", "--force", name]);
            assert!(
                removed.status.success(),
                "volume group {name} is left over from an earlier failure and still in use: {}",
                String::from_utf8_lossy(&removed.stderr)
            );
        }
        let image = format!("/var/lib/carve-lab/{name}.img");
        run_ok("truncate", &["-s", size, &image]);
        let loop_dev = run_ok("losetup", &["--find", "--show", &image])
            .trim()
            .to_string();
        let mut args = vec!["-y"];
        args.extend_from_slice(pvcreate);
        args.push(&loop_dev);
        run_ok("pvcreate", &args);
        run_ok("vgcreate", &[name, &loop_dev]);
        lvcreate_thin_pool(name, "pool", pool, true);
        Self {
            vg: name.to_string(),
            loop_dev,
            image,
        }
    }

    /// `lab` with this volume group and its pool.
    pub fn lab(&self, lab: &Lab) -> Lab {
        let mut lab = lab.clone();
        lab.vg.clone_from(&self.vg);
        lab.pool = "pool".into();
        lab
    }
}

impl Drop for OwnVg {
    fn drop(&mut self) {
        let _ = run("vgremove", &["--yes", "--force", &self.vg]);
        let _ = run("pvremove", &["-y", &self.loop_dev]);
        let _ = run("losetup", &["-d", &self.loop_dev]);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// `lvcreate` of the thin pool `vg/name` of `size`, zeroing new chunks if `zero`.
fn lvcreate_thin_pool(vg: &str, name: &str, size: &str, zero: bool) {
    let zero = if zero { "y" } else { "n" };
    run_ok(
        "lvcreate",
        &[
            "--yes",
            "--type",
            "thin-pool",
            "--size",
            size,
            "--zero",
            zero,
            "--name",
            name,
            vg,
        ],
    );
}
