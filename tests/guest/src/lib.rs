//! Harness for the real-kernel tier: the lab the guest provides, the driver's real binaries
//! started as a cluster would, and leak accounting.
//!
//! Every test here is declared with [`guest_test!`]: `#[ignore]`d on the host and run inside the
//! guest by `hack/vm/run -- carve-guest-suite` (`--include-ignored --test-threads=1`: LVM, LIO
//! and iscsid are global state). A scenario drives volumes with [`volume`] (and a second node
//! plugin with [`second_node`]), asks the plugins who they are with [`identity`], checks its
//! data with [`checksum`], looks at the machine directly with [`storage`] (LVM, block devices),
//! [`host`] (mounts, sysfs), [`iscsi`] (sessions, multipath, iscsiadm by hand) and [`lio`]
//! (configfs), makes LVM fixtures of its own with [`pools`], and ends with [`assert_no_leaks`].

pub mod agents;
pub mod checksum;
pub mod conformance;
pub mod driver;
pub mod host;
pub mod identity;
pub mod iscsi;
pub mod lab;
pub mod leaks;
pub mod lio;
pub mod metrics;
pub mod pools;
pub mod second_node;
pub mod storage;
pub mod storage_host;
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

/// Polls `done` every 250 ms for up to `secs` seconds; whether it came true.
pub async fn eventually(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 4 {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    done()
}

/// Declares a guest-tier test `$test`: a `#[tokio::test]`, ignored on the host (the guest runs
/// it with `--include-ignored`), whose body is one of
/// - `async { ... }`: run as it is;
/// - a scenario body (`async |driver| { ... }` or an async fn taking `&Driver`): run by
///   [`scenario`], named after the test as libtest names it ([`test_name`]);
/// - driver options, then a scenario body: run by [`scenario_with`].
///
/// [`guest_test_mut!`] declares one whose body restarts the plugins.
#[macro_export]
macro_rules! guest_test {
    ($test:ident, async $body:block $(,)?) => {
        #[tokio::test]
        #[ignore = "guest tier: hack/vm/run -- carve-guest-suite"]
        async fn $test() {
            async $body.await
        }
    };
    ($test:ident, $body:expr $(,)?) => {
        $crate::guest_test!($test, async {
            let name = $crate::test_name(module_path!(), stringify!($test));
            $crate::scenario(&name, $body).await;
        });
    };
    ($test:ident, $options:expr, $body:expr $(,)?) => {
        $crate::guest_test!($test, async {
            let name = $crate::test_name(module_path!(), stringify!($test));
            $crate::scenario_with(&name, $options, $body).await;
        });
    };
}

/// [`guest_test!`] with driver options and a body run by [`scenario_mut`] (it may restart the
/// plugins).
#[macro_export]
macro_rules! guest_test_mut {
    ($test:ident, $options:expr, $body:expr $(,)?) => {
        $crate::guest_test!($test, async {
            let name = $crate::test_name(module_path!(), stringify!($test));
            $crate::scenario_mut(&name, $options, $body).await;
        });
    };
}

/// The name libtest gives the test `test` declared in `module` (a `module_path!()`, which starts
/// with the crate's name): `<module below the crate>::<test>`, e.g. `clones::a_clone`.
pub fn test_name(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{test}"),
        None => test.to_string(),
    }
}

/// One scenario named `name` (timed with [`Timer`]) on a driver of its own with the
/// default options: `body` runs against the driver, then leaks are accounted for.
pub async fn scenario(name: &str, body: impl AsyncFnOnce(&Driver)) {
    scenario_with(name, DriverOptions::default(), body).await;
}

/// [`scenario`] on a driver started with `options`.
pub async fn scenario_with(name: &str, options: DriverOptions, body: impl AsyncFnOnce(&Driver)) {
    scenario_mut(name, options, async |driver: &mut Driver| {
        body(driver).await;
    })
    .await;
}

/// [`scenario_with`] whose body may restart the plugins (it has the driver mutably).
pub async fn scenario_mut(name: &str, options: DriverOptions, body: impl AsyncFnOnce(&mut Driver)) {
    let _t = Timer::start(name);
    let lab = Lab::from_env();
    let mut driver = Driver::start(&lab, options).await;
    body(&mut driver).await;
    assert_no_leaks(&lab, Some(driver.dir.path()));
}

/// Prints how long a scenario took (seen with `--nocapture`), pass or fail.
#[derive(Debug)]
pub struct Timer(String, std::time::Instant);

impl Timer {
    /// Starts timing the scenario `name` (printed as is, e.g. `node_plugin::name`).
    pub fn start(name: impl Into<String>) -> Self {
        Self(name.into(), std::time::Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!("{}: {:.1} s", self.0, self.1.elapsed().as_secs_f64());
    }
}
