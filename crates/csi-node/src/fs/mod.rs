//! Filesystems on volumes: probing what a disk holds ([`FsProbe`]), the format decision (a pure
//! function) and the mkfs/fsck commands.

pub mod decision;
pub mod mkfs;
pub mod probe;

pub use decision::{Decision, decide};
pub use probe::{FsProbe, Probe};
