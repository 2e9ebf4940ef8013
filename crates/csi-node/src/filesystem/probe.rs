//! What a disk holds, according to util-linux `blkid -p` (libblkid's low-level probe), behind
//! [`FsProbe`].
//!
//! Invariants: superblocks *and* partition tables are probed, with libblkid's safe probe (which
//! reports ambivalent results instead of picking one); any blkid error is an error, never
//! "empty"; a read check proves the device can actually be read before an "empty" result is
//! trusted. blkid runs as a program (the node image ships util-linux) rather than through a
//! binding, so the build needs no libblkid headers or libclang; it costs one fork and exec per
//! NodeStage.

use csi_common::{
    Error, Result,
    command::{BoxFuture, Cmd, CommandRunner, Output},
};
use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No signature at all.
    Empty,
    /// A filesystem of this type.
    Filesystem(String),
    /// A partition table of this type (`gpt`, `dos`, ...).
    PartitionTable(String),
    /// Some other signature (RAID member, LUKS, LVM PV, swap...): `TYPE` and `USAGE`.
    Other(String),
    /// Several signatures disagree.
    Ambivalent,
}

/// Classifies libblkid's result values (the same keys `blkid -p -o export` prints).
pub fn classify(values: &HashMap<String, String>) -> Probe {
    if let Some(pt) = values.get("PTTYPE") {
        return Probe::PartitionTable(pt.clone());
    }
    match (values.get("TYPE"), values.get("USAGE").map(String::as_str)) {
        (Some(t), Some("filesystem")) => Probe::Filesystem(t.clone()),
        (Some(t), usage) => Probe::Other(format!("{t} ({})", usage.unwrap_or("unknown usage"))),
        (None, _) => Probe::Other(format!("unrecognised signature {values:?}")),
    }
}

/// Probing the content of a device.
pub trait FsProbe: Send + Sync + fmt::Debug {
    /// What `device` holds.
    fn probe<'a>(&'a self, device: &'a Path) -> BoxFuture<'a, Result<Probe>>;
    /// Reads the first and last MiB of `device`; an error means the device cannot be trusted.
    fn read_check<'a>(&'a self, device: &'a Path) -> BoxFuture<'a, Result<()>>;
}

/// util-linux `blkid` in low-level probing mode (`blkid -p -o export DEVICE`, blkid(8)), run
/// through the command runner: superblocks and partition tables, with libblkid's safe probe.
///
/// Exit codes (blkid(8), "RETURN CODE"): 0 a signature was found and is classified from the
/// `KEY=VALUE` lines; 2 nothing was identified; 8 ambivalent low-level probing result; anything
/// else (4 usage or internal error, a timeout, a signal) is an error. Because blkid also answers 2
/// for a path it cannot open (with nothing on stderr), the device is opened for reading first and
/// "nothing identified" is believed only with an empty stderr: an error is never "empty".
#[derive(Debug, Clone)]
pub struct Blkid {
    /// Runs `blkid` (with the node's command prefix, if any).
    pub runner: Arc<dyn CommandRunner>,
    /// Timeout of one probe.
    pub timeout: Duration,
}

/// The probe command for `device`.
pub fn blkid_cmd(device: &Path) -> Cmd {
    Cmd::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(device.to_string_lossy())
}

/// Interprets `blkid -p -o export`'s exit code, stdout and stderr (see [`Blkid`]).
pub fn interpret(device: &Path, out: &Output) -> Result<Probe> {
    let fail = |why: String| {
        Err(Error::internal(format!(
            "blkid {}: {why}",
            device.display()
        )))
    };
    match out.code {
        Some(0) => {
            let values: HashMap<String, String> = out
                .stdout
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Ok(classify(&values))
        }
        Some(2) if out.stderr.trim().is_empty() => Ok(Probe::Empty),
        Some(8) => Ok(Probe::Ambivalent),
        code => fail(format!(
            "exit {}: {}",
            code.map_or("by signal".to_string(), |c| c.to_string()),
            out.stderr.trim()
        )),
    }
}

/// Opens `device` for reading, so that blkid's "nothing identified" cannot stand for a path that
/// is missing or unreadable. Only block devices and regular files (images in tests) are probed.
/// The open file is returned: see [`hold_open`].
fn check_openable(device: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::FileTypeExt;
    let fail = |e: std::io::Error| Error::internal(format!("blkid open {}: {e}", device.display()));
    let file = std::fs::File::open(device).map_err(fail)?;
    let kind = file.metadata().map_err(fail)?.file_type();
    if kind.is_block_device() || kind.is_file() {
        Ok(file)
    } else {
        Err(Error::internal(format!(
            "blkid {}: not a block device",
            device.display()
        )))
    }
}

/// How much of the start and of the end of a device [`read_probed_regions`] reads: the regions
/// libblkid's probes read (measured with blkid 2.38.1 on ext4: blocks at 2 MiB and 4 MiB, and
/// up to 1.5 MiB before the end, where GPT's backup header and MD/DRBD metadata live).
pub const PROBED_HEAD: u64 = 8 << 20;
/// See [`PROBED_HEAD`].
pub const PROBED_TAIL: u64 = 2 << 20;

/// The size of one read of [`read_regions`]: ten reads for the probed regions instead of the
/// 1,280 an 8 KiB buffer takes. (In the lab guest the read size made no measurable difference
/// to a cold pass, which the disk's transfer bounds; what made the probe cheap is
/// [`hold_open`].)
const READ_CHUNK: usize = 1 << 20;

/// Reads every byte of `regions` (`(offset, length)` pairs, in bytes) of the open `file` with
/// `pread(2)` in [`READ_CHUNK`]-byte pieces, and fails on any error or short read.
fn read_regions(file: &std::fs::File, device: &Path, regions: &[(u64, u64)]) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let fail =
        |e: std::io::Error| Error::internal(format!("read check of {}: {e}", device.display()));
    let mut buf = vec![0u8; READ_CHUNK];
    for &(offset, len) in regions {
        let mut done = 0u64;
        while done < len {
            let want = usize::try_from(len - done).map_or(READ_CHUNK, |n| n.min(READ_CHUNK));
            file.read_exact_at(&mut buf[..want], offset + done)
                .map_err(fail)?;
            done += want as u64;
        }
    }
    Ok(())
}

/// Opens `device` for reading and returns it with its size in bytes.
fn open_sized(device: &Path) -> Result<(std::fs::File, u64)> {
    use std::io::{Seek, SeekFrom};
    let fail =
        |e: std::io::Error| Error::internal(format!("read check of {}: {e}", device.display()));
    let mut file = std::fs::File::open(device).map_err(fail)?;
    let size = file.seek(SeekFrom::End(0)).map_err(fail)?;
    Ok((file, size))
}

/// Reads the first [`PROBED_HEAD`] and last [`PROBED_TAIL`] bytes of `device` (all of a smaller
/// one). blkid answers "nothing identified" when its own reads fail, so an "empty" answer is
/// trusted only if these regions read back before and after it.
fn read_probed_regions(device: &Path) -> Result<()> {
    let (file, size) = open_sized(device)?;
    let head = PROBED_HEAD.min(size);
    let tail_start = size.saturating_sub(PROBED_TAIL).max(head);
    read_regions(&file, device, &[(0, head), (tail_start, size - tail_start)])
}

/// Reads the first and last MiB of `device` (all of a smaller one).
fn read_check_blocking(device: &Path) -> Result<()> {
    const MIB: u64 = 1 << 20;
    let (file, size) = open_sized(device)?;
    let head = MIB.min(size);
    let tail_start = size.saturating_sub(MIB).max(head);
    read_regions(&file, device, &[(0, head), (tail_start, size - tail_start)])
}

/// Opens `device` for reading and keeps it open for as long as the returned file lives (`None`
/// if it cannot be opened: the reads that follow then report why).
///
/// Linux drops a block device's page cache when its last opener closes it (`blkdev_put`, which
/// calls `kill_bdev`). Without a holder, every pass over the probed regions (the read before
/// blkid, blkid's own reads, the read after it, the read check) went to the disk again: over
/// iSCSI that is the whole cost of a NodeStage's probe. With one, the first pass reads the disk
/// and the later ones find its pages: blkid then probes exactly the bytes that pass proved
/// readable, which is what the read before it is for.
pub fn hold_open(device: &Path) -> Option<std::fs::File> {
    std::fs::File::open(device).ok()
}

impl FsProbe for Blkid {
    fn probe<'a>(&'a self, device: &'a Path) -> BoxFuture<'a, Result<Probe>> {
        Box::pin(async move {
            // Held until the probe ends, so the passes below share one read of the disk.
            let _held = check_openable(device)?;
            let regions = |device: PathBuf| async move {
                tokio::task::spawn_blocking(move || read_probed_regions(&device))
                    .await
                    .map_err(|e| Error::internal(format!("read check task: {e}")))?
            };
            let started = std::time::Instant::now();
            regions(device.to_path_buf()).await?;
            tracing::debug!(device = %device.display(), ms = started.elapsed().as_millis(),
                "probe: the regions blkid reads were read first");
            let out = self
                .runner
                .run(&blkid_cmd(device).timeout(self.timeout))
                .await?;
            let probe = interpret(device, &out)?;
            if probe == Probe::Empty {
                // blkid turns its own read errors into "nothing identified": believe it only if
                // every region it reads could still be read after it answered.
                regions(device.to_path_buf()).await?;
            }
            Ok(probe)
        })
    }

    fn read_check<'a>(&'a self, device: &'a Path) -> BoxFuture<'a, Result<()>> {
        let device: PathBuf = device.to_path_buf();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read_check_blocking(&device))
                .await
                .map_err(|e| Error::internal(format!("read check task: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `blkid -p -o export` fixture → values (the first line is a comment with the exit code).
    fn fixture(name: &str) -> HashMap<String, String> {
        let path = format!(
            "{}/../../tests/fixtures/node/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[test]
    fn classifies_captured_signatures() {
        assert_eq!(
            classify(&fixture("blkid-ext4")),
            Probe::Filesystem("ext4".into())
        );
        assert_eq!(
            classify(&fixture("blkid-xfs")),
            Probe::Filesystem("xfs".into())
        );
        assert_eq!(
            classify(&fixture("blkid-dos")),
            Probe::PartitionTable("dos".into())
        );
        let luks = HashMap::from([
            ("TYPE".to_string(), "crypto_LUKS".to_string()),
            ("USAGE".to_string(), "crypto".to_string()),
        ]);
        assert!(matches!(classify(&luks), Probe::Other(t) if t.contains("crypto_LUKS")));
        let odd = HashMap::from([("SBMAGIC".to_string(), "x".to_string())]);
        assert!(matches!(classify(&odd), Probe::Other(_)));
    }

    fn output(code: Option<i32>, stdout: &str, stderr: &str) -> Output {
        Output {
            command: "blkid -p -o export /dev/sda".into(),
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn interprets_blkid_exit_codes_fail_closed() {
        let dev = Path::new("/dev/sda");
        let ext4 = std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/node/blkid-ext4.txt",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(
            interpret(dev, &output(Some(0), &ext4, "")).unwrap(),
            Probe::Filesystem("ext4".into())
        );
        assert_eq!(
            interpret(dev, &output(Some(2), "", "")).unwrap(),
            Probe::Empty
        );
        assert_eq!(
            interpret(dev, &output(Some(8), "", "")).unwrap(),
            Probe::Ambivalent
        );
        // blkid found something it cannot name: never "empty"
        assert!(matches!(
            interpret(dev, &output(Some(0), "DEVNAME=/dev/sda\n", "")).unwrap(),
            Probe::Other(_)
        ));
        // "nothing identified" with a complaint, a usage/internal error, a kill: errors
        for out in [
            output(Some(2), "", "blkid: error: /dev/sda: Input/output error"),
            output(Some(4), "", "blkid: bad usage"),
            output(None, "", ""),
            output(Some(1), "", ""),
        ] {
            assert!(interpret(dev, &out).is_err(), "{out:?} must be an error");
        }
    }

    fn real() -> Blkid {
        Blkid {
            runner: Arc::new(csi_common::command::SystemRunner::new()),
            timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn probes_files_with_real_blkid() {
        let blkid = real();
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, vec![0u8; 4 << 20]).unwrap();
        assert_eq!(blkid.probe(&empty).await.unwrap(), Probe::Empty);
        blkid.read_check(&empty).await.unwrap();
        // a DOS partition table: one Linux partition and the 0x55AA signature
        let mut mbr = vec![0u8; 4 << 20];
        mbr[446 + 4] = 0x83;
        mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&4096u32.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        let pt = dir.path().join("pt");
        std::fs::write(&pt, mbr).unwrap();
        assert_eq!(
            blkid.probe(&pt).await.unwrap(),
            Probe::PartitionTable("dos".into())
        );
        // blkid itself answers 2 ("nothing identified") for these; the probe must not
        let missing = dir.path().join("missing");
        assert!(
            blkid.probe(&missing).await.is_err(),
            "a missing device is never empty"
        );
        assert!(
            blkid.probe(dir.path()).await.is_err(),
            "a directory is never empty"
        );
        assert!(blkid.read_check(&missing).await.is_err());
    }

    #[test]
    fn the_region_reads_prove_every_byte_and_fail_on_a_short_read() {
        let dir = tempfile::tempdir().unwrap();
        // larger than the probed regions, and not a whole number of read chunks
        let odd = dir.path().join("odd");
        std::fs::write(&odd, vec![7u8; (11 << 20) + 513]).unwrap();
        read_probed_regions(&odd).unwrap();
        read_check_blocking(&odd).unwrap();
        // smaller than one region: all of it is read
        let small = dir.path().join("small");
        std::fs::write(&small, vec![0u8; 3000]).unwrap();
        read_probed_regions(&small).unwrap();
        read_check_blocking(&small).unwrap();
        // a region the file does not have is an error, never a silent success
        let file = std::fs::File::open(&small).unwrap();
        let err = read_regions(&file, &small, &[(0, 3000), (2000, 2 << 20)]).unwrap_err();
        assert!(err.to_string().contains("read check of"), "{err}");
    }
}
