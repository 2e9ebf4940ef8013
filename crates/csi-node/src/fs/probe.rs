//! What a disk holds, according to libblkid (the `blkid` crate), behind [`FsProbe`].
//!
//! Invariants: superblocks *and* partition tables are probed, with `do_safeprobe` (which reports
//! ambivalent results instead of picking one); any libblkid error is an error, never "empty";
//! a read check proves the device can actually be read before an "empty" result is trusted.

use csi_common::{Error, Result, command::BoxFuture};
use std::{
    collections::HashMap,
    fmt,
    io::Read,
    path::{Path, PathBuf},
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

/// libblkid through the `blkid` crate.
#[derive(Debug, Clone, Default)]
pub struct Blkid;

fn probe_blocking(device: &Path) -> Result<Probe> {
    use blkid::{
        SuperblocksFlags,
        prober::{ProbeState, Prober},
    };
    let fail = |what: &str, e: blkid::BlkIdError| {
        Error::internal(format!("blkid {what} {}: {e}", device.display()))
    };
    let prober = Prober::new_from_filename(device).map_err(|e| fail("open", e))?;
    prober
        .enable_superblocks(true)
        .map_err(|e| fail("enable superblocks", e))?;
    prober
        .set_superblocks_flags(SuperblocksFlags::DEFAULT | SuperblocksFlags::USAGE)
        .map_err(|e| fail("superblock flags", e))?;
    prober
        .enable_partitions(true)
        .map_err(|e| fail("enable partitions", e))?;
    match prober.do_safe_probe().map_err(|e| fail("probe", e))? {
        ProbeState::NothingDetected => Ok(Probe::Empty),
        ProbeState::Ambivalent => Ok(Probe::Ambivalent),
        ProbeState::Success | ProbeState::Done => {
            let values = prober
                .get_values_map()
                .map_err(|e| fail("read values of", e))?;
            Ok(classify(&values))
        }
    }
}

fn read_check_blocking(device: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let fail =
        |e: std::io::Error| Error::internal(format!("read check of {}: {e}", device.display()));
    let mut file = std::fs::File::open(device).map_err(fail)?;
    let size = file.seek(SeekFrom::End(0)).map_err(fail)?;
    let chunk = 1 << 20;
    let mut buf = vec![0u8; chunk as usize];
    for offset in [0, size.saturating_sub(chunk)] {
        file.seek(SeekFrom::Start(offset)).map_err(fail)?;
        let want = chunk.min(size) as usize;
        file.read_exact(&mut buf[..want]).map_err(fail)?;
    }
    Ok(())
}

impl FsProbe for Blkid {
    fn probe<'a>(&'a self, device: &'a Path) -> BoxFuture<'a, Result<Probe>> {
        let device: PathBuf = device.to_path_buf();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || probe_blocking(&device))
                .await
                .map_err(|e| Error::internal(format!("blkid task: {e}")))?
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

    #[tokio::test]
    async fn probes_files_with_real_libblkid() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, vec![0u8; 4 << 20]).unwrap();
        assert_eq!(Blkid.probe(&empty).await.unwrap(), Probe::Empty);
        Blkid.read_check(&empty).await.unwrap();
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
            Blkid.probe(&pt).await.unwrap(),
            Probe::PartitionTable("dos".into())
        );
        let missing = dir.path().join("missing");
        assert!(
            Blkid.probe(&missing).await.is_err(),
            "a probe error is never empty"
        );
        assert!(Blkid.read_check(&missing).await.is_err());
    }
}
