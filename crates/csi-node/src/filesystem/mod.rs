//! Filesystems on volumes: probing what a disk holds ([`FsProbe`]), the format decision (a pure
//! function), the mkfs/fsck commands and online growth.

pub mod decision;
pub mod mkfs;
pub mod probe;
pub mod resize;

pub use decision::{Decision, decide};
pub use probe::{FsProbe, Probe};
