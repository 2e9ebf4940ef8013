use super::*;
use crate::ops::testing::{
    FakeHost, NODE1, NODE2, carve_tags, linear_row, lv_row, pool_row, publication_tags,
    published_tags,
};

fn chap() -> Chap {
    Chap {
        username: "user1".into(),
        password: "secretpass12".into(),
        mutual: None,
    }
}

#[tokio::test]
async fn wiped_lio_is_rebuilt_from_tags_with_saved_chap() {
    let host = FakeHost::new();
    let tags = publication_tags("a", &format!("ro.chap:{NODE1}"));
    let a = lv_row("csi-a-1", 8 << 20, Some("pool"), &tags);
    let b = linear_row("csi-b-1", &carve_tags("b"));
    host.expect_lvs(&[pool_row(8 << 30), a.clone(), b]);
    host.expect_lvs_one("csi-a-1", &[a]);
    let saved = HashMap::from([(
        (host.target("csi-a-1").to_string(), NODE1.to_string()),
        chap(),
    )]);
    let report = reconcile(&host.ctx, &saved).await.unwrap();
    assert_eq!(report.volumes, 2);
    assert_eq!(report.restored_exports, 2);
    assert_eq!(report.restored_acls, 1);
    assert!(report.unexported.is_empty() && report.orphan_exports.is_empty());
    assert_eq!(host.acls("csi-a-1"), [NODE1]);
    assert!(host.acls("csi-b-1").is_empty());
    let state = host.ctx.lio.state().await.unwrap();
    let target = state.target(host.target("csi-a-1").as_str()).unwrap();
    assert!(target.authentication);
    assert!(
        target.acls[0].write_protect,
        "readonly publication restored read-only"
    );
    assert_eq!(target.acls[0].auth.userid.as_deref(), Some("user1"));
    host.finish();
}

#[tokio::test]
async fn existing_acls_are_left_alone_and_orphans_counted_not_deleted() {
    let host = FakeHost::new();
    let a = host.published_linear("csi-a-1", "a", NODE1).await;
    host.export_linear("csi-gone-1", &carve_tags("gone")).await;
    host.add_acl("csi-gone-1", NODE2).await;
    host.expect_lvs(&[a]);
    let report = reconcile(&host.ctx, &HashMap::new()).await.unwrap();
    assert_eq!((report.restored_exports, report.restored_acls), (0, 0));
    assert_eq!(
        report.orphan_exports,
        [host.target("csi-gone-1").to_string()]
    );
    assert_eq!(
        host.acls("csi-gone-1"),
        [NODE2],
        "orphans are reported, never deleted"
    );
    host.finish();
}

#[tokio::test]
async fn chap_publication_without_saved_credentials_waits_for_the_co() {
    let host = FakeHost::new();
    let tags = publication_tags("a", &format!("rw.chap:{NODE1}"));
    let a = linear_row("csi-a-1", &tags);
    host.expect_lvs(std::slice::from_ref(&a));
    host.expect_lvs_one("csi-a-1", std::slice::from_ref(&a));
    let report = reconcile(&host.ctx, &HashMap::new()).await.unwrap();
    assert_eq!(
        (
            report.restored_exports,
            report.restored_acls,
            report.awaiting_chap
        ),
        (1, 0, 1)
    );
    assert!(
        host.acls("csi-a-1").is_empty(),
        "never an ACL without the CHAP it had"
    );
    host.expect_survey(1 << 30, 4 << 20, &[a]);
    let page = crate::ops::list_volumes::list_volumes(&host.ctx, 0, "")
        .await
        .unwrap();
    assert!(
        page.entries[0].published_nodes.is_empty(),
        "reported unpublished, so the CO republishes"
    );
    host.finish();
}

#[tokio::test]
async fn an_acl_the_record_does_not_hold_is_removed_and_a_grant_is_decided_on_a_fresh_read() {
    let host = FakeHost::new();
    let listed = host
        .export_linear("csi-a-1", &published_tags("a", NODE1))
        .await;
    // node2 holds an ACL no tag grants (restored from a stale saveconfig.json); node1's
    // publication was revoked between the list and the fresh read.
    host.add_acl("csi-a-1", NODE2).await;
    host.expect_lvs(std::slice::from_ref(&listed));
    let revoked = linear_row("csi-a-1", &carve_tags("a"));
    host.expect_lvs_one("csi-a-1", &[revoked]);
    let report = reconcile(&host.ctx, &HashMap::new()).await.unwrap();
    assert_eq!((report.restored_acls, report.removed_acls), (0, 1));
    assert!(
        host.acls("csi-a-1").is_empty(),
        "{:?}",
        host.acls("csi-a-1")
    );
    host.finish();
}

#[tokio::test]
async fn a_volume_with_an_rpc_in_flight_is_left_to_it_and_the_pass_retried() {
    let host = FakeHost::new();
    let a = linear_row("csi-a-1", &published_tags("a", NODE1));
    host.expect_lvs(&[a]);
    let guards = OperationGuards::new("volume");
    let held = guards.try_acquire("csi-a-1").unwrap();
    let err = reconcile_guarded(&host.ctx, &HashMap::new(), &guards)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), csi_common::Kind::Unavailable, "{err}");
    assert!(host.configfs_is_empty(), "nothing done to a guarded volume");
    drop(held);
    host.finish();
}

/// A host whose ledger holds `n` volumes, the `i`th with the publication tags `publications(i)`,
/// and whose LIO is empty, as after a reboot; and the volumes' ids.
async fn wiped_lab(
    n: usize,
    publications: impl Fn(usize) -> Vec<String>,
) -> (FakeHost, Vec<String>) {
    let host = FakeHost::with_ledger();
    let mut survey = vec![pool_row(8 << 30)];
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("v{i}");
        let mut tags = carve_tags(&name);
        tags.extend(publications(i));
        ids.push(format!("csi-{name}-1"));
        survey.push(lv_row(&ids[i], 8 << 20, Some("pool"), &tags));
    }
    host.expect_survey(1 << 30, 4 << 20, &survey);
    host.ctx.lvm().unwrap().resync().await.unwrap();
    (host, ids)
}

fn alternate_node(i: usize) -> &'static str {
    if i.is_multiple_of(2) { NODE1 } else { NODE2 }
}

/// The configfs operations (listings, entries, stats, reads, writes) one reconciliation of `n`
/// wiped volumes performs.
async fn reconcile_ops(n: usize) -> u64 {
    let (host, ids) = wiped_lab(n, |i| vec![format!("carve.pub=rw:{}", alternate_node(i))]).await;
    let before = crate::lio::counted::tally::under(&host.root);
    let report = reconcile(&host.ctx, &HashMap::new()).await.unwrap();
    let ops = crate::lio::counted::tally::under(&host.root) - before;
    assert_eq!((report.restored_exports, report.restored_acls), (n, n));
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(host.acls(id), [alternate_node(i)], "{id}");
    }
    host.finish();
    ops
}

#[tokio::test]
async fn reconciliation_does_configfs_work_linear_in_the_volumes() {
    let small = reconcile_ops(10).await;
    let large = reconcile_ops(40).await;
    eprintln!("configfs operations: 10 volumes {small}, 40 volumes {large}");
    // Quadratic (every export listing every HBA) made this 6902 against 1277: 5.4x.
    assert!(
        large * 10 <= small * 42,
        "4x the volumes cost {large} operations against {small}: not linear"
    );
}

/// Restores running at once never mix up volumes: each target gets exactly the ACLs of its own
/// record, each with its own CHAP user (or none, or none at all when its secret was not saved)
/// and write protection.
#[tokio::test]
async fn parallel_restores_give_each_target_exactly_its_own_acls_and_chap() {
    let n = 24;
    let (host, ids) = wiped_lab(n, |i| match i % 4 {
        0 => vec![format!("carve.pub=rw:{NODE1}")],
        1 => vec![format!("carve.pub=ro.chap:{NODE2}")],
        2 => vec![format!("carve.pub=rw.chap:{NODE1}")],
        _ => vec![
            format!("carve.pub=rw.chap:{NODE1}"),
            format!("carve.pub=ro.chap:{NODE2}"),
        ],
    })
    .await;
    let user = |i: usize, node: &str| format!("u{i}{}", &node[node.len() - 1..]);
    let mut saved = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        if i % 4 == 1 || i % 4 == 3 {
            for node in [NODE1, NODE2] {
                let chap = Chap {
                    username: user(i, node),
                    password: format!("secretpass{i:02}{}", &node[node.len() - 1..]),
                    mutual: None,
                };
                saved.insert((host.target(id).to_string(), node.to_string()), chap);
            }
        }
    }
    let report = reconcile_serving(
        &host.ctx,
        Arc::new(saved),
        &OperationGuards::new("volume"),
        &Restoration::default(),
        RESTORE_PARALLELISM,
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.restored_exports, n);
    assert_eq!((report.restored_acls, report.awaiting_chap), (n, n / 4));
    let state = host.ctx.lio.state().await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let target = state.target(host.target(id).as_str()).unwrap();
        let acls: Vec<(&str, bool, Option<&str>)> = target
            .acls
            .iter()
            .map(|a| {
                let user = a.auth.userid.as_deref();
                (a.initiator.as_str(), a.write_protect, user)
            })
            .collect();
        let (u1, u2) = (user(i, NODE1), user(i, NODE2));
        let want: Vec<(&str, bool, Option<&str>)> = match i % 4 {
            0 => vec![(NODE1, false, None)],
            1 => vec![(NODE2, true, Some(&u2))],
            2 => vec![],
            _ => vec![(NODE1, false, Some(&u1)), (NODE2, true, Some(&u2))],
        };
        assert_eq!(acls, want, "{id}");
        assert_eq!(target.authentication, i % 4 == 1 || i % 4 == 3, "{id}");
        assert_eq!(
            target.lun0_object.as_deref(),
            Some(id.as_str()),
            "{id}: its own LV"
        );
    }
    let hbas: BTreeSet<&str> = state
        .storage_objects
        .iter()
        .map(|o| o.hba.as_str())
        .collect();
    assert_eq!(hbas.len(), n, "one HBA per storage object");
    host.finish();
}

/// The saveconfig writer waits for the pass: no file with only some of the restores is written
/// beside it (the file keeps what it held: after a reboot, the CHAP credentials of ACLs not
/// restored yet), and one save after the pass holds every export and ACL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saveconfig_is_written_once_after_the_pass_not_beside_it() {
    let n = 40;
    let (host, _) = wiped_lab(n, |i| vec![format!("carve.pub=rw:{}", alternate_node(i))]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saveconfig.json");
    std::fs::write(&path, "held before").unwrap();
    let host = host.with_saver_after(&path, std::time::Duration::from_millis(1));
    // Every version of the file seen, by its number of targets (`None`: the one held before).
    let targets_in = |path: &std::path::Path| -> Option<usize> {
        let text = std::fs::read_to_string(path).ok()?;
        let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
        doc["targets"].as_array().map(Vec::len)
    };
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let watcher = {
        let (path, seen) = (path.clone(), Arc::clone(&seen));
        tokio::task::spawn_blocking(move || {
            for _ in 0..20_000 {
                let found = targets_in(&path);
                seen.lock().unwrap().insert(found);
                if found == Some(n) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
        })
    };
    let report = reconcile(&host.ctx, &HashMap::new()).await.unwrap();
    assert_eq!((report.restored_exports, report.restored_acls), (n, n));
    watcher.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        BTreeSet::from([None, Some(n)]),
        "files written (by number of targets; None: the one held before)"
    );
    host.finish();
}

/// An ACL LIO already holds that grants more than its publication records (restored from a
/// stale or hand-edited saveconfig.json, or changed by hand) is set again from the record: a
/// read-only publication gets its write protection back, a CHAP publication its CHAP; one whose
/// credentials are not saved is removed (never an ACL without the CHAP it had).
#[tokio::test]
async fn an_existing_acl_that_grants_more_than_its_record_is_set_again_or_removed() {
    for (publication, saved, want) in [
        ("ro", false, Some((true, None))),
        ("rw.chap", true, Some((false, Some("user1")))),
        ("rw.chap", false, None),
    ] {
        let host = FakeHost::new();
        let tags = publication_tags("a", &format!("{publication}:{NODE1}"));
        let row = host.export_linear("csi-a-1", &tags).await;
        // The ACL as a stale file restores it: read-write, no CHAP.
        host.add_acl("csi-a-1", NODE1).await;
        host.expect_lvs(std::slice::from_ref(&row));
        host.expect_lvs_one("csi-a-1", &[row]);
        let mut creds = HashMap::new();
        if saved {
            creds.insert(
                (host.target("csi-a-1").to_string(), NODE1.to_string()),
                chap(),
            );
        }
        let report = reconcile(&host.ctx, &creds).await.unwrap();
        let state = host.ctx.lio.state().await.unwrap();
        let target = state.target(host.target("csi-a-1").as_str()).unwrap();
        let got = target
            .acls
            .first()
            .map(|a| (a.write_protect, a.auth.userid.as_deref()));
        assert_eq!(got, want, "{publication}, saved credentials: {saved}");
        match want {
            Some((_, Some(_))) => {
                assert!(target.authentication, "CHAP enforced");
                assert_eq!(report.restored_acls, 1, "set again");
            }
            Some(_) => assert_eq!(report.restored_acls, 1, "set again"),
            None => assert_eq!((report.removed_acls, report.awaiting_chap), (1, 1)),
        }
        host.finish();
    }
}
