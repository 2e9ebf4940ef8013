//! Section 2's points on a restored population (`--restored`, e.g. `500,2000`): the population
//! is written straight into the metadata of a volume group of its own, in one `vgcfgrestore`,
//! instead of N CreateVolume+ControllerPublish calls.
//!
//! Why: LVM rewrites and re-parses the whole VG metadata text on every command, so each
//! `lvcreate` costs more as the VG grows. Under TCG, at 2,000 LVs one `lvcreate` of a thin LV
//! took 11.3 s, `lvchange --addtag` 6.4 s and `lvremove` 9.0 s (2026-12-01): creating and
//! publishing 2,000 volumes one by one would take hours, and a default 1 MiB metadata area
//! would not even hold them (docs/kubernetes.md, "The LVM metadata area").
//!
//! What the population is: N linear LVs of one extent (4 MiB) named as CreateVolume names
//! them ([`LvName::for_volume`] of `bench-scale-<k>`), with exactly the tags Carve gives a
//! volume published read-write to the lab's node ([`VolumeRecord::creation_tags`], with the
//! publication and the used mark), on a PV with a 64 MiB metadata area, plus a 2 GiB thin pool
//! for the probes. The controller started on that VG finds N volumes it must export: its
//! start-up reconciliation creates every export and ACL, which is timed. Everything measured
//! afterwards (probe RPCs, floor, restarts, RSS) is the same as at the smaller points.
//!
//! Removal: the plugins stopped, LIO wiped, the LVs deactivated, the PV's label wiped and its
//! loop device detached (removing 2,000 LVs one metadata commit at a time would take hours).

use crate::sys::{sh, timed};
use anyhow::{Context, Result, bail};
use carve_guest_tests::Lab;
use csi_common::ids::{LvName, NodeId};
use csi_controller::lvm::tags::{Publication, VolumeRecord};
use std::{fmt::Write as _, time::Duration};

/// The volume group of the large points.
const VG: &str = "carvelarge";
/// Its backing file on the lab's scratch disk (sparse; the disk is new at every boot, and the
/// point removes it, on a panic too, so none is ever found left over).
const IMAGE: &str = "/var/lib/carve-lab/bench-large.img";
/// LVM's default extent size, which is each population LV's size.
const EXTENT: u64 = 4 << 20;

/// A volume group holding a restored population; [`Restored::remove`] takes it away (and a
/// drop without it, after a panic, does so as best it can).
#[derive(Debug)]
pub(super) struct Restored {
    loop_dev: String,
    /// How long each step of making it took, for the report.
    pub(super) made: String,
    removed: bool,
}

impl Restored {
    /// Makes the VG with `n` published volumes (for `initiator`) and a thin pool, active.
    pub(super) fn create(n: usize, initiator: &str) -> Result<Self> {
        let gib = ((n as u64 * EXTENT) >> 30) + 4;
        sh("truncate", &["-s", &format!("{gib}G"), IMAGE])?;
        let loop_dev = sh("losetup", &["--find", "--show", IMAGE])?
            .trim()
            .to_string();
        let mut this = Self {
            loop_dev,
            made: String::new(),
            removed: false,
        };
        let (empty, full) = ("/var/tmp/bench-large-empty.vg", "/var/tmp/bench-large.vg");
        let dev = this.loop_dev.clone();
        let made = (|| {
            sh("pvcreate", &["-y", "-q", "--metadatasize", "64m", &dev])?;
            sh("vgcreate", &["-q", VG, &dev])?;
            sh("vgcfgbackup", &["-q", "-f", empty, VG])?;
            let text = std::fs::read_to_string(empty)?;
            std::fs::write(full, with_population(&text, n, initiator)?)?;
            let ((), restore) = timed(|| sh("vgcfgrestore", &["-q", "-f", full, VG]).map(drop))?;
            let ((), pool) = timed(|| {
                sh(
                    "lvcreate",
                    &[
                        "-y",
                        "-q",
                        "--type",
                        "thin-pool",
                        "-L",
                        "2g",
                        "-n",
                        "pool",
                        VG,
                    ],
                )
                .map(drop)
            })?;
            // One activation for the VG, udev's device links awaited once at the end.
            let ((), activate) = timed(|| {
                sh("vgchange", &["-q", "-ay", "--noudevsync", VG])?;
                sh("udevadm", &["settle", "--timeout=1800"]).map(drop)
            })?;
            let secs = |d: Duration| d.as_secs_f64();
            anyhow::Ok(format!(
                "restored: vgcfgrestore {:.1} s, thin pool {:.1} s, activation {:.1} s",
                secs(restore),
                secs(pool),
                secs(activate)
            ))
        })();
        let _ = std::fs::remove_file(empty);
        let _ = std::fs::remove_file(full);
        match made {
            Ok(made) => {
                this.made = made;
                Ok(this)
            }
            Err(e) => match this.remove() {
                Ok(_) => Err(e),
                Err(r) => Err(e.context(format!("and removing the VG failed: {r:#}"))),
            },
        }
    }

    /// `lab` with this VG and its pool.
    pub(super) fn lab(lab: &Lab) -> Lab {
        let mut lab = lab.clone();
        lab.vg = VG.into();
        lab.pool = "pool".into();
        lab
    }

    /// Wipes LIO, deactivates the VG and discards it (run with the plugins stopped); returns
    /// how long it took. Every step is tried; the first failure is the answer.
    pub(super) fn remove(mut self) -> Result<Duration> {
        self.removed = true;
        let ((), took) = timed(|| {
            let wiped = crate::raw::wipe_lio().map(drop);
            let discarded = discard(&self.loop_dev);
            wiped.and(discarded)
        })?;
        Ok(took)
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        if !self.removed {
            let _ = crate::raw::wipe_lio();
            let _ = discard(&self.loop_dev);
        }
    }
}

/// Deactivates [`VG`], wipes the PV label on `loop_dev`, detaches it and deletes [`IMAGE`];
/// every step is tried, the first failure is the answer.
fn discard(loop_dev: &str) -> Result<()> {
    let mut steps: Vec<Result<()>> = Vec::new();
    if sh("vgs", &[VG]).is_ok() {
        steps.push(sh("vgchange", &["-q", "-an", "--noudevsync", VG]).map(drop));
        steps.push(sh("udevadm", &["settle", "--timeout=1800"]).map(drop));
    }
    steps.push(sh("wipefs", &["-q", "-a", loop_dev]).map(drop));
    steps.push(sh("losetup", &["-d", loop_dev]).map(drop));
    steps.push(
        std::fs::remove_file(IMAGE)
            .context("remove the restored VG's image")
            .map(drop),
    );
    steps.into_iter().collect()
}

/// LVM's metadata text `vg` (a `vgcfgbackup` of the empty VG) with `n` population LVs added.
fn with_population(vg: &str, n: usize, initiator: &str) -> Result<String> {
    let Some(end) = vg.find("\n}\n") else {
        bail!("no end of the volume group in the vgcfgbackup text");
    };
    if vg.contains("logical_volumes") {
        bail!("the volume group is not empty");
    }
    let node = NodeId::parse(initiator).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut lvs = String::from("\n\tlogical_volumes {\n");
    for k in 0..n {
        let name = format!("bench-scale-{k}");
        let lv = LvName::for_volume(&name);
        let record = VolumeRecord {
            name,
            required_bytes: EXTENT,
            capabilities: "mount/ext4/SINGLE_NODE_WRITER".into(),
            published: vec![Publication {
                node: node.clone(),
                readonly: false,
                chap: false,
            }],
            used: true,
            ..Default::default()
        };
        let tags: Vec<String> = record
            .creation_tags()
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect();
        write!(
            lvs,
            "\n\t\t{lv} {{\n\t\t\tid = \"{id}\"\n\t\t\tstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n\
             \t\t\tflags = []\n\t\t\ttags = [{tags}]\n\t\t\tcreation_time = 1764547200\n\
             \t\t\tcreation_host = \"carve-bench\"\n\t\t\tsegment_count = 1\n\n\
             \t\t\tsegment1 {{\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 1\n\
             \t\t\t\ttype = \"striped\"\n\t\t\t\tstripe_count = 1\n\n\
             \t\t\t\tstripes = [\n\t\t\t\t\t\"pv0\", {k}\n\t\t\t\t]\n\t\t\t}}\n\t\t}}\n",
            id = lvm_id(k),
            tags = tags.join(", "),
        )?;
    }
    lvs.push_str("\t}\n");
    Ok(format!("{}{lvs}{}", &vg[..end], &vg[end..]))
}

/// An LVM id (32 characters of `[0-9A-Za-z]` in groups of 6-4-4-4-4-4-6) unique to `k`.
fn lvm_id(k: usize) -> String {
    let raw = format!("CarveBench{k:0>22}");
    let mut id = String::new();
    let mut at = 0;
    for len in [6, 4, 4, 4, 4, 4, 6] {
        if at > 0 {
            id.push('-');
        }
        id.push_str(&raw[at..at + len]);
        at += len;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `vgcfgbackup` of an empty VG in LVM 2.03.16's layout (ids shortened).
    const EMPTY: &str = concat!(
        "# Generated by LVM2 version 2.03.16(2) (2022-05-18): Tue Dec  1 21:16:00 2026\n\n",
        "contents = \"Text Format Volume Group\"\nversion = 1\n\n",
        "description = \"vgcfgbackup -f /var/tmp/bench-large-empty.vg carvelarge\"\n\n",
        "creation_host = \"carve-lab\"\t# Linux carve-lab 6.1.0-50-amd64 x86_64\n",
        "creation_time = 1764623760\t# Tue Dec  1 21:16:00 2026\n\n",
        "carvelarge {\n",
        "\tid = \"aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg\"\n\tseqno = 1\n",
        "\tformat = \"lvm2\"\t\t\t# informational\n",
        "\tstatus = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\n\tflags = []\n",
        "\textent_size = 8192\t\t# 4 Megabytes\n\tmax_lv = 0\n\tmax_pv = 0\n",
        "\tmetadata_copies = 0\n\n\tphysical_volumes {\n\n\t\tpv0 {\n",
        "\t\t\tid = \"hhhhhh-iiii-jjjj-kkkk-llll-mmmm-nnnnnn\"\n",
        "\t\t\tdevice = \"/dev/loop2\"\t# Hint only\n\n",
        "\t\t\tstatus = [\"ALLOCATABLE\"]\n\t\t\tflags = []\n",
        "\t\t\tdev_size = 41943040\t# 20 Gigabytes\n\t\t\tpe_start = 131072\n",
        "\t\t\tpe_count = 5104\t# 19.9375 Gigabytes\n\t\t}\n\t}\n\n}\n",
    );

    #[test]
    fn the_population_goes_inside_the_volume_group_with_carves_tags() {
        let text = with_population(EMPTY, 2, "iqn.2024-01.dev.carve:node1").unwrap();
        let vg_end = text.find("\n}\n").unwrap();
        let lvs = text.find("logical_volumes").unwrap();
        assert!(lvs < vg_end, "{text}");
        assert!(text.starts_with("# Generated by LVM2"));
        assert!(text.ends_with("\t\t}\n\t}\n\n}\n"), "{text}");
        let first = LvName::for_volume("bench-scale-0");
        assert!(text.contains(&format!("\t\t{first} {{")), "{text}");
        assert!(text.contains("\"carve.v=1\""));
        assert!(
            text.contains("\"carve.pub=rw:iqn.2024-01.dev.carve:node1\""),
            "{text}"
        );
        assert!(
            text.contains("\"pv0\", 1\n"),
            "the second LV on extent 1: {text}"
        );
        assert!(with_population(&text, 1, "iqn.2024-01.dev.carve:node1").is_err());
    }

    #[test]
    fn lvm_ids_have_lvms_shape_and_differ() {
        let id = lvm_id(1999);
        assert_eq!(id.len(), 38);
        assert_eq!(
            id.split('-').map(str::len).collect::<Vec<_>>(),
            [6, 4, 4, 4, 4, 4, 6]
        );
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_alphanumeric()));
        assert_ne!(lvm_id(1), lvm_id(10));
    }
}
