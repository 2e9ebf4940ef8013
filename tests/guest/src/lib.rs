//! Harness for the real-kernel tier: the lab the guest provides, the driver's real binaries
//! started as a cluster would, and leak accounting.
//!
//! Every test here is `#[ignore]`d on the host and run inside the guest by
//! `hack/vm/run -- carve-guest-suite` (`--include-ignored --test-threads=1`: LVM, LIO and
//! iscsid are global state). A scenario drives volumes with [`volume`] (and a second node
//! plugin with [`second_node`]) and ends with [`assert_no_leaks`].

pub mod checksum;
pub mod conformance;
pub mod driver;
pub mod lab;
pub mod leaks;
pub mod metrics;
pub mod second_node;
pub mod volume;

pub use driver::{Driver, DriverOptions};
pub use lab::Lab;
pub use leaks::assert_no_leaks;

/// Runs a program (argv, no shell) and returns its output; panics if it cannot start.
pub fn run(program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs a program and returns its stdout; panics (with stderr) unless it exits 0.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
