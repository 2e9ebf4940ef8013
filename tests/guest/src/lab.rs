//! The fixtures the guest's init provides (hack/vm/guest/carve-lab-up), read from the
//! environment: volume group, thin pool, portal and two initiator identities.

/// What the guest set up for the tests.
#[derive(Debug, Clone)]
pub struct Lab {
    /// Volume group to carve from.
    pub vg: String,
    /// Thin pool in `vg`.
    pub pool: String,
    /// LIO portal `ip:port`.
    pub portal: String,
    /// This node's initiator IQN (`/etc/iscsi/initiatorname.iscsi`).
    pub initiator: String,
    /// A second initiator identity, used through iscsiadm iface [`Lab::iface2`].
    pub initiator2: String,
    /// The iscsiadm iface that logs in as [`Lab::initiator2`].
    pub iface2: String,
}

impl Lab {
    /// Reads the lab from `CARVE_LAB_*`; panics with a clear message outside the guest.
    pub fn from_env() -> Self {
        let get = |key: &str| {
            env(
                key,
                "guest tests run inside the VM (hack/vm/run -- carve-guest-suite)",
            )
        };
        Self {
            vg: get("CARVE_LAB_VG"),
            pool: get("CARVE_LAB_POOL"),
            portal: get("CARVE_LAB_PORTAL"),
            initiator: get("CARVE_LAB_INITIATOR"),
            initiator2: get("CARVE_LAB_INITIATOR2"),
            iface2: get("CARVE_LAB_IFACE2"),
        }
    }
}

/// The environment variable `key`; panics saying it is not set and `why` it should be.
pub fn env(key: &str, why: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is not set: {why}"))
}
