//! Carve's multipath.conf drop-in (multipath.conf(5), `config_dir`, default
//! `/etc/multipath/conf.d`) and why its values are what they are.
//!
//! Invariant: the drop-in only has a `devices` entry for LIO's vendor string, merged by
//! multipath-tools into its built-in LIO-ORG entry (ALUA, group_by_prio); it sets no
//! `defaults`, so the host's own choices (find_multipaths, polling_interval, blacklist) stay.

/// File name of the drop-in inside the configuration directory.
pub const FILE_NAME: &str = "carve.conf";

/// Seconds open-iscsi waits for a failed path's session to come back before failing its I/O
/// up to dm-multipath (`node.session.timeo.replacement_timeout` of every path of a map). The
/// open-iscsi default, 120 s, suits a single path (it is all the patience the volume has) but
/// would freeze I/O queued on a dead path for two minutes while another path is healthy.
pub const PATH_REPLACEMENT_TIMEOUT_S: u32 = 5;

/// `no_path_retry` of Carve's LUNs: with every path down, dm-multipath queues I/O for this many
/// path-checker intervals (`polling_interval`, 5 s by default) and then fails it. 24 × 5 s =
/// 120 s, the patience a single-path volume gets from open-iscsi's default replacement
/// timeout: a target restart or a short network outage queues and resumes unnoticed, a long
/// one returns errors to the application instead of hanging it (and `umount`) forever.
pub const NO_PATH_RETRY: u32 = 24;

/// The drop-in's text.
pub const DROP_IN: &str = "\
# Written by Carve's csi-node; it is rewritten when it differs. Run csi-node with
# --multipath off to manage multipath for Carve's volumes yourself.
# LIO LUNs (Carve exports its volumes through LIO): map names are WWIDs, I/O queues for
# no_path_retry x polling_interval (24 x 5 s = 120 s) with all paths down, then fails.
devices {
\tdevice {
\t\tvendor \"LIO-ORG\"
\t\tproduct \".*\"
\t\tuser_friendly_names \"no\"
\t\tno_path_retry 24
\t\tfailback \"immediate\"
\t}
}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_in_sets_what_the_constants_say_and_no_defaults() {
        assert!(DROP_IN.contains(&format!("no_path_retry {NO_PATH_RETRY}\n")));
        assert!(DROP_IN.contains("user_friendly_names \"no\""));
        assert!(!DROP_IN.contains("defaults"), "the host's defaults stay");
        assert_eq!(DROP_IN.matches('{').count(), DROP_IN.matches('}').count());
    }
}
