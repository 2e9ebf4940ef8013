//! Byte patterns written with their checksum and read back, once or over and over by a reader
//! thread: what a user checks after a round trip. (Not Carve's data services: snapshots and
//! clones are in `volume`.)

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
use sha2::{Digest, Sha256};
use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    // xorshift64*, eight bytes a step: incompressible enough, reproducible, no dependency, and
    // cheap in a debug build under TCG (a byte a step cost seconds per 8 MiB there).
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The SHA-256 of `bytes`, as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest
        .iter()
        .fold(String::with_capacity(digest.len() * 2), |mut out, b| {
            write!(out, "{b:02x}").expect("writing to a String cannot fail");
            out
        })
}

/// Writes `len` pseudo-random bytes to a new file, fsyncs it, returns their SHA-256.
pub fn write_file(path: &Path, len: usize, seed: u64) -> String {
    let data = pseudo_random(len, seed);
    let mut file =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    file.write_all(&data).expect("write data");
    file.sync_all().expect("fsync data");
    hex(&Sha256::digest(&data))
}

/// SHA-256 of a whole file.
pub fn file_sha256(path: &Path) -> String {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex(&Sha256::digest(&data))
}

/// Writes `len` pseudo-random bytes at the start of a block device (or a file bound to one),
/// flushes, returns their SHA-256.
pub fn write_device(path: &Path, len: usize, seed: u64) -> String {
    let data = pseudo_random(len, seed);
    let mut dev = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    dev.write_all(&data).expect("write device");
    dev.sync_all().expect("fsync device");
    hex(&Sha256::digest(&data))
}

/// SHA-256 of the first `len` bytes of a block device, read after dropping caches.
pub fn device_sha256(path: &Path, len: usize) -> String {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    let mut dev =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut data = vec![0u8; len];
    dev.read_exact(&mut data).expect("read device");
    hex(&Sha256::digest(&data))
}

/// Pause between two of [`Reader`]'s reads: it checks the data all through an operation without
/// taking the guest's only busy core from the operation it watches.
const READER_PAUSE: Duration = Duration::from_millis(200);

/// SHA-256 of a whole file, read from its device: the file's own clean pages are dropped from
/// the page cache first (posix_fadvise(2) `POSIX_FADV_DONTNEED`), the rest of the cache kept.
pub fn file_sha256_uncached(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
        .unwrap_or_else(|e| panic!("posix_fadvise {}: {e}", path.display()));
    file_sha256(path)
}

/// A thread that reads a file from its device over and over ([`file_sha256_uncached`], a
/// [`READER_PAUSE`] between reads) until [`Reader::assert_all_read_alike`] stops it.
#[derive(Debug)]
pub struct Reader {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, u32)>,
}

impl Reader {
    /// Starts reading `file`, whose SHA-256 must stay `expected`.
    pub fn start(file: PathBuf, expected: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut reads, mut bad) = (0, 0);
            while reads == 0 || !stopped.load(Ordering::Relaxed) {
                reads += 1;
                if file_sha256_uncached(&file) != expected {
                    bad += 1;
                }
                std::thread::sleep(READER_PAUSE);
            }
            (reads, bad)
        });
        Self { stop, thread }
    }

    /// Stops it; panics unless every read (at least one) saw the expected data.
    pub fn assert_all_read_alike(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (reads, bad) = self.thread.join().expect("reader");
        assert_eq!(
            bad, 0,
            "{bad} of {reads} reads saw other data while growing"
        );
    }
}

/// Asserts the filesystem mounted at `dir` is still served by its device: [`DATA_LEN`] more
/// bytes of `seed` are written to `after.bin`, the page cache is dropped
/// ([`crate::host::drop_caches`]), and both `after.bin` and `data.bin` (checksum `written`) read
/// back from the device as written.
///
/// [`DATA_LEN`]: crate::volume::DATA_LEN
pub fn assert_still_served(dir: &Path, written: &str, seed: u64) {
    let after = write_file(&dir.join("after.bin"), crate::volume::DATA_LEN, seed);
    crate::host::drop_caches();
    assert_eq!(file_sha256(&dir.join("data.bin")), written, "data.bin");
    assert_eq!(file_sha256(&dir.join("after.bin")), after, "after.bin");
}
