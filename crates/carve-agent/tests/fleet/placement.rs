//! Placement: requisite topology filters, preferred topology orders, free capacity decides
//! within a rank, StorageClass `storageHosts` and `pool` filter; the answer carries the chosen
//! agent's topology and an id naming it; GetCapacity per topology; a retried CreateVolume finds
//! the volume on whichever agent has it.

use super::{MIB, ZONE, create, create_request, expect_absent, fleet, in_zones, lv, zone};
use crate::support::Script;
use csi_controller::ops::testing::VG;
use csi_proto::v1::{GetCapacityRequest, controller_server::Controller};
use tonic::{Code, Request};

/// `expect_create` of the 5 MiB volume `name` on `host`, after its GetCapacity saw `free`.
fn expect_placed(host: &csi_controller::ops::testing::FakeHost, free: u64, name: &str) {
    host.expect_survey(free, 4 * MIB, &[]);
    Script::new(name).expect_create(host);
}

#[tokio::test]
async fn requisite_filters_preferred_orders_then_free_space_decides() {
    let f = fleet(&[("a", "a", false), ("b", "b", false), ("c", "c", false)]).await;

    // Requisite b or c, preferred c first: c, though b has far more room.
    expect_absent(&f, &["a", "b", "c"], "v1");
    f.host("b").expect_survey(10 << 30, 4 * MIB, &[]);
    expect_placed(f.host("c"), 100 * MIB, "v1");
    let req = in_zones(create_request("v1", &[]), &["b", "c"], &["c", "b"]);
    let v = create(&f.svc, req).await.unwrap();
    assert_eq!(v.volume_id, format!("c:{VG}:{}", lv("v1")));
    assert_eq!(v.accessible_topology, [zone("c")]);

    // No preference: the most free space.
    expect_absent(&f, &["a", "b", "c"], "v2");
    f.host("a").expect_survey(1 << 30, 4 * MIB, &[]);
    expect_placed(f.host("b"), 10 << 30, "v2");
    f.host("c").expect_survey(2 << 30, 4 * MIB, &[]);
    let v = create(&f.svc, create_request("v2", &[])).await.unwrap();
    assert!(v.volume_id.starts_with("b:"), "{}", v.volume_id);

    // The preferred agent has no room for 5 MiB: the next by rank, not the roomiest overall.
    expect_absent(&f, &["a", "b", "c"], "v3");
    f.host("a").expect_survey(0, 4 * MIB, &[]);
    f.host("b").expect_survey(10 << 30, 4 * MIB, &[]);
    expect_placed(f.host("c"), 100 * MIB, "v3");
    let req = in_zones(create_request("v3", &[]), &[], &["a", "c", "b"]);
    let v = create(&f.svc, req).await.unwrap();
    assert!(v.volume_id.starts_with("c:"), "{}", v.volume_id);

    // Requisite no agent serves: RESOURCE_EXHAUSTED (spec.md), and no host is asked anything.
    let req = in_zones(create_request("v4", &[]), &["z"], &[]);
    let (code, message) = create(&f.svc, req).await.unwrap_err();
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    f.finish();
}

#[tokio::test]
async fn storage_hosts_and_pool_choose_among_agents_and_never_reach_them() {
    let f = fleet(&[("a", "a", false), ("b", "b", false)]).await;
    // Only a is allowed: it gets the volume without a capacity race (one candidate), and the
    // parameters it is sent are its own (it refuses unknown ones).
    expect_absent(&f, &["a", "b"], "v1");
    Script::new("v1").expect_create(f.host("a"));
    let req = create_request("v1", &[("storageHosts", "a"), ("pool", VG)]);
    let v = create(&f.svc, req).await.unwrap();
    assert_eq!(v.volume_id, format!("a:{VG}:{}", lv("v1")));
    assert_eq!(v.accessible_topology, [zone("a")]);

    for (params, says) in [
        (vec![("storageHosts", "a, zz")], "zz"),
        (vec![("pool", "othervg")], "pool"),
        (vec![("storageHosts", "b"), ("pool", "othervg")], "pool"),
    ] {
        let (code, message) = create(&f.svc, create_request("v2", &params))
            .await
            .unwrap_err();
        assert_eq!(code, Code::InvalidArgument, "{params:?}: {message}");
        assert!(message.contains(says), "{message}");
    }
    // storageHosts allows b only, and the requisite topology is a's.
    let req = in_zones(create_request("v2", &[("storageHosts", "b")]), &["a"], &[]);
    assert_eq!(
        create(&f.svc, req).await.unwrap_err().0,
        Code::ResourceExhausted
    );
    f.finish();
}

#[tokio::test]
async fn a_retried_create_finds_the_volume_on_the_agent_that_has_it() {
    let f = fleet(&[("a", "a", false), ("b", "b", false)]).await;
    // An earlier attempt (timed out for the CO) left "v" on b; a has more room now.
    let script = Script::new("v");
    f.host("a").expect_lvs_one(&lv("v"), &[]);
    f.host("b").expect_lookup(&script.row(&[]));
    f.host("b")
        .expect_survey(10 << 30, 4 * MIB, &[script.row(&[])]);
    let v = create(&f.svc, create_request("v", &[])).await.unwrap();
    assert_eq!(v.volume_id, format!("b:{VG}:{}", lv("v")));
    assert_eq!(v.capacity_bytes, (8 * MIB).cast_signed());

    // The same name now asked where b is excluded: ALREADY_EXISTS, not a second volume on a.
    f.host("a").expect_lvs_one(&lv("v"), &[]);
    f.host("b").expect_lookup(&script.row(&[]));
    let req = create_request("v", &[("storageHosts", "a")]);
    let (code, message) = create(&f.svc, req).await.unwrap_err();
    assert_eq!(code, Code::AlreadyExists, "{message}");
    assert!(message.contains("storage host b"), "{message}");
    f.finish();
}

#[tokio::test]
async fn capacity_is_summed_per_topology_and_filtered_by_pool() {
    let f = fleet(&[("a", "a", false), ("b", "b", false), ("c", "a", false)]).await;
    let capacity = |topology: Option<&str>, params: &[(&str, &str)]| GetCapacityRequest {
        volume_capabilities: vec![super::ext4()],
        parameters: params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        accessible_topology: topology.map(zone),
    };
    let ask = async |req| {
        f.svc
            .get_capacity(Request::new(req))
            .await
            .map(tonic::Response::into_inner)
    };

    f.host("a").expect_survey(1 << 30, 4 * MIB, &[]);
    f.host("c").expect_survey(3 << 30, 4 * MIB, &[]);
    let zone_a = ask(capacity(Some("a"), &[])).await.unwrap();
    assert_eq!(zone_a.available_capacity, 4 << 30);
    assert_eq!(
        zone_a.maximum_volume_size,
        Some(3 << 30),
        "a volume lives on one host"
    );
    assert_eq!(zone_a.minimum_volume_size, Some((4 * MIB).cast_signed()));

    f.host("b").expect_survey(2 << 30, 4 * MIB, &[]);
    let zone_b = ask(capacity(Some("b"), &[])).await.unwrap();
    assert_eq!(zone_b.available_capacity, 2 << 30);

    for n in ["a", "b", "c"] {
        f.host(n).expect_survey(1 << 30, 4 * MIB, &[]);
    }
    assert_eq!(
        ask(capacity(None, &[])).await.unwrap().available_capacity,
        3 << 30
    );

    // Only c offers "a" in zone a.
    f.host("c").expect_survey(3 << 30, 4 * MIB, &[]);
    let only_c = ask(capacity(Some("a"), &[("storageHosts", "c"), ("pool", VG)])).await;
    assert_eq!(only_c.unwrap().available_capacity, 3 << 30);

    let nowhere = ask(capacity(Some("z"), &[])).await.unwrap();
    assert_eq!(
        (nowhere.available_capacity, nowhere.maximum_volume_size),
        (0, None)
    );
    let other_pool = ask(capacity(Some("a"), &[("pool", "othervg")]))
        .await
        .unwrap();
    assert_eq!(other_pool.available_capacity, 0);
    assert!(ZONE.starts_with("topology.carve.dev/"));
    f.finish();
}

#[tokio::test]
async fn a_create_still_running_on_an_agent_is_not_placed_a_second_time() {
    use csi_common::command::Expectation;
    use csi_controller::lvm::{Allocation, argv};
    use std::time::Duration;

    let f = fleet(&[("a", "", false), ("b", "", false)]).await;
    // The first attempt goes to a (more room), whose lvcreate takes a while.
    let script = Script::new("v");
    expect_absent(&f, &["a", "b"], "v");
    f.host("a").expect_survey(10 << 30, 4 * MIB, &[]);
    f.host("b").expect_survey(1 << 30, 4 * MIB, &[]);
    f.host("a").expect_survey(10 << 30, 4 * MIB, &[]);
    let lvcreate = argv::lvcreate(
        VG,
        &script.lv,
        8 * MIB,
        &Allocation::Linear,
        &script.tags,
        Duration::from_secs(5),
    );
    f.host("a")
        .expect(Expectation::of(&lvcreate).delay(Duration::from_secs(2)));
    let first = {
        let svc = f.svc.clone();
        tokio::spawn(async move { create(&svc, create_request("v", &[])).await })
    };
    let started = || {
        f.host("a")
            .runner
            .ran()
            .iter()
            .any(|argv| argv.first().is_some_and(|p| p == "lvcreate"))
    };
    while !started() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The controller restarts (its guards are gone) and the CO retries while a still creates:
    // a must not answer "no such volume" and let the name be placed on b, which has room now.
    f.host("b").expect_lvs_one(&lv("v"), &[]);
    let (code, message) = create(&f.restarted(), create_request("v", &[]))
        .await
        .unwrap_err();
    assert_eq!(code, Code::Aborted, "{message}");
    assert!(message.contains("storage host a"), "{message}");

    let v = first.await.unwrap().unwrap();
    assert_eq!(v.volume_id, format!("a:{VG}:{}", lv("v")));
    f.finish();
}
