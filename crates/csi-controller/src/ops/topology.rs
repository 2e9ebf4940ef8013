//! Where this storage host's volumes are reachable from, against what CreateVolume and
//! GetCapacity ask (spec.md, `TopologyRequirement`, `GetCapacityRequest.accessible_topology`).
//!
//! Invariants: with no `--accessible-topology` the plugin does not advertise
//! VOLUME_ACCESSIBILITY_CONSTRAINTS, its volumes carry no topology and requirements (which a CO
//! SHALL NOT send then) constrain nothing; with topologies configured, every volume of the host
//! is reachable from all of them (one storage host, one network), a requisite list is met when
//! one served topology lies within one requisite topology ([`Segments::within`]), preferred
//! topologies only order a choice this host does not have, and capacity asked for a topology
//! the host does not serve is 0.

use csi_common::topology::Segments;
use std::collections::HashMap;

/// Why `requisite` cannot be met by a host serving `served`, if it cannot. An empty requisite
/// list (none given, or only `preferred`) is met anywhere.
pub fn unmet(served: &[Segments], requisite: &[HashMap<String, String>]) -> Option<String> {
    if served.is_empty() || requisite.is_empty() {
        return None;
    }
    if requisite
        .iter()
        .any(|wanted| served.iter().any(|s| s.within(wanted)))
    {
        return None;
    }
    let served: Vec<String> = served.iter().map(ToString::to_string).collect();
    let wanted: Vec<String> = requisite.iter().map(show).collect();
    Some(format!(
        "this storage host serves {} and the volume must be reachable from one of {}",
        served.join(" or "),
        wanted.join(", ")
    ))
}

/// Whether volumes provisioned here are reachable from `wanted` (GetCapacity's
/// `accessible_topology`; `None` or no topologies configured: yes).
pub fn serves(served: &[Segments], wanted: Option<&HashMap<String, String>>) -> bool {
    match wanted {
        Some(wanted) if !served.is_empty() => served.iter().any(|s| s.within(wanted)),
        _ => true,
    }
}

fn show(segments: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = segments.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_common::testing::map;

    #[test]
    fn nothing_configured_constrains_nothing() {
        assert_eq!(unmet(&[], &[map(&[("zone", "b")])]), None);
        assert!(serves(&[], Some(&map(&[("zone", "b")]))));
    }

    #[test]
    fn requisite_is_met_by_any_served_topology_within_any_requisite_one() {
        let served = [
            Segments::parse("zone=a").unwrap(),
            Segments::parse("zone=c").unwrap(),
        ];
        assert_eq!(unmet(&served, &[]), None);
        assert_eq!(
            unmet(
                &served,
                &[
                    map(&[("zone", "b"), ("region", "r")]),
                    map(&[("zone", "c"), ("region", "r")])
                ]
            ),
            None
        );
        let why = unmet(&served, &[map(&[("zone", "b")])]).unwrap();
        assert!(why.contains("{zone=a} or {zone=c}"), "{why}");
        assert!(why.contains("{zone=b}"), "{why}");
    }

    #[test]
    fn capacity_is_only_offered_where_the_host_is_reachable() {
        let served = [Segments::parse("zone=a").unwrap()];
        assert!(serves(&served, None));
        assert!(serves(&served, Some(&map(&[("zone", "a"), ("rack", "1")]))));
        assert!(!serves(&served, Some(&map(&[("zone", "b")]))));
    }
}
