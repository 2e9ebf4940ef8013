//! The other machine of the two-machine lab (`hack/vm/run --storage-host`): a second guest on a
//! QEMU network of its own, running hack/vm/guest-bin/carve-storage-host. This guest reaches it
//! at [`StorageHost::address`] and asks it for things through the directory both share: start
//! or stop its carve-agent, list its LVs, account for leaks.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// How long a request may take (starting the agent reconciles the storage host first).
const ANSWER_WITHIN: Duration = Duration::from_mins(3);

/// The storage-host guest, as this guest sees it.
#[derive(Debug)]
pub struct StorageHost {
    /// Its address on the lab network.
    pub address: IpAddr,
    exchange: PathBuf,
}

impl StorageHost {
    /// From `CARVE_LAB_STORAGE_HOST` and `CARVE_LAB_EXCHANGE`; panics with a clear message in a
    /// guest booted without `--storage-host`.
    pub fn from_env() -> Self {
        let get =
            |key: &str| crate::lab::env(key, "two-machine tests run in hack/vm/run --storage-host");
        Self {
            address: get("CARVE_LAB_STORAGE_HOST")
                .parse()
                .expect("CARVE_LAB_STORAGE_HOST is an IP address"),
            exchange: get("CARVE_LAB_EXCHANGE").into(),
        }
    }

    /// Where its carve-agent's `--tls-dir` files go before [`StorageHost::ask`]`("start-agent")`.
    pub fn agent_tls_dir(&self) -> PathBuf {
        self.exchange.join("tls").join("agent")
    }

    /// Its carve-agent's log so far.
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.exchange.join("agent.log")).unwrap_or_default()
    }

    /// What it answered to the request `word` (see carve-storage-host); panics when it failed
    /// or did not answer within [`ANSWER_WITHIN`].
    pub fn ask(&self, word: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let ctl = self.exchange.join("ctl");
        std::fs::create_dir_all(&ctl).expect("exchange ctl dir");
        let n = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = ctl.join(format!("{n}.tmp"));
        std::fs::write(&tmp, word).expect("request");
        std::fs::rename(&tmp, ctl.join(format!("{n}.req"))).expect("request");
        let (rc, out) = (ctl.join(format!("{n}.rc")), ctl.join(format!("{n}.out")));
        let deadline = Instant::now() + ANSWER_WITHIN;
        while !rc.exists() {
            assert!(
                Instant::now() < deadline,
                "the storage host did not answer {word} within {ANSWER_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let code = std::fs::read_to_string(&rc).unwrap_or_default();
        let output = std::fs::read_to_string(&out).unwrap_or_default();
        assert_eq!(
            code.trim(),
            "0",
            "the storage host failed {word}: {output}\n--- agent ---\n{}",
            self.agent_log()
        );
        output
    }
}
