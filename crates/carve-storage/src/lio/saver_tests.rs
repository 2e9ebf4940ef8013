use super::*;
use crate::lio::{AclSpec, ExportSpec, configfs::ConfigfsLio, counted::tally};
use csi_common::command::BoxFuture;
use serde_json::{Value, json};
use std::path::Path;

/// A LIO with no export, in the plain directory `root` (created).
fn empty_lio(root: &Path) -> Arc<dyn Lio> {
    std::fs::create_dir_all(root).unwrap();
    Arc::new(ConfigfsLio::plain_directory(root))
}

fn spec(n: usize) -> ExportSpec {
    ExportSpec {
        target: Iqn::parse(&format!("iqn.2024-01.dev.carve:csi-v-{n:03}")).unwrap(),
        storage_object: format!("csi-v-{n:03}"),
        device: format!("/dev/carvevg/csi-v-{n:03}").into(),
        serial: format!("0123abcd-0000-4000-8000-{n:012}"),
        portals: vec!["127.0.0.1:3260".parse().unwrap()],
        thin: false,
    }
}

fn acl(node: &str) -> AclSpec {
    AclSpec {
        initiator: Iqn::parse(&format!("iqn.2024-01.dev.carve:{node}")).unwrap(),
        readonly: false,
        chap: None,
    }
}

/// A LIO in a new plain directory with the exports `numbers`, and a saver whose background
/// saves wait an hour, after one whole save.
struct Fixture {
    dir: tempfile::TempDir,
    lio: Arc<dyn Lio>,
    path: std::path::PathBuf,
    saver: SaveHandle,
}

async fn saved_with(numbers: impl IntoIterator<Item = usize>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let lio = empty_lio(&dir.path().join("cfg"));
    for n in numbers {
        lio.ensure_export(&spec(n)).await.unwrap();
    }
    let path = dir.path().join("saveconfig.json");
    let saver = SaveHandle::spawn(Arc::clone(&lio), path.clone(), Duration::from_hours(1));
    saver.request();
    saver.sync().await.unwrap();
    Fixture {
        dir,
        lio,
        path,
        saver,
    }
}

/// What ControllerPublish does to the saver: `node`'s ACL on export `n`, its request, a save.
async fn publish_and_save(lio: &Arc<dyn Lio>, saver: &SaveHandle, n: usize, node: &str) {
    lio.ensure_acl(&spec(n).target, &acl(node)).await.unwrap();
    saver.request_volume(&spec(n).target, &spec(n).storage_object);
    saver.sync().await.unwrap();
}

fn saved(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The target IQNs in the file, and the initiators of each target's ACLs.
fn targets(path: &Path) -> Vec<(String, Vec<String>)> {
    saved(path)["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let acls = t["tpgs"][0]["node_acls"].as_array().unwrap().iter();
            (
                t["wwn"].as_str().unwrap().to_string(),
                acls.map(|a| a["node_wwn"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn objects(path: &Path) -> Vec<String> {
    saved(path)["storage_objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn coalesced_saves_write_the_current_state() {
    let dir = tempfile::tempdir().unwrap();
    let lio = empty_lio(&dir.path().join("cfg"));
    let path = dir.path().join("saveconfig.json");
    let saver = SaveHandle::spawn(lio, path.clone(), Duration::from_millis(50));
    for _ in 0..5 {
        saver.request();
    }
    for _ in 0..100 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(saved(&path)["targets"], json!([]));
}

#[tokio::test]
async fn sync_writes_at_once_and_clears_pending_only_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let lio = empty_lio(&dir.path().join("target"));
    let path = dir.path().join("etc").join("saveconfig.json");
    let handle = SaveHandle::spawn(lio, path.clone(), Duration::from_hours(1));
    assert!(!handle.pending());
    handle.request();
    assert!(
        handle.pending(),
        "a requested save is pending until written"
    );
    assert!(!path.exists(), "the coalesced save waits its delay");
    handle.sync().await.unwrap();
    assert!(!handle.pending());
    assert!(path.exists());
    // A file that cannot be written keeps the change pending.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    handle.request_volume(&spec(1).target, "csi-v-001");
    assert!(handle.sync().await.is_err());
    assert!(handle.pending(), "a failed save stays pending");
    std::fs::remove_dir(&path).unwrap();
    handle.sync().await.unwrap();
    assert!(!handle.pending());
}

/// The configfs operations of one save that follows one changed ACL, with `exports` exports.
async fn operations_of_one_incremental_save(exports: usize) -> u64 {
    let Fixture {
        dir,
        lio,
        path,
        saver,
    } = saved_with(0..exports).await;
    let root = dir.path().join("cfg");
    lio.ensure_acl(&spec(3).target, &acl("node1"))
        .await
        .unwrap();
    saver.request_volume(&spec(3).target, &spec(3).storage_object);
    let before = tally::under(&root);
    saver.sync().await.unwrap();
    let operations = tally::under(&root) - before;
    let node = "iqn.2024-01.dev.carve:node1".to_string();
    let found = targets(&path);
    assert_eq!(found.len(), exports);
    for (n, (iqn, acls)) in found.iter().enumerate() {
        assert_eq!(iqn, spec(n).target.as_str());
        assert_eq!(*acls, if n == 3 { vec![node.clone()] } else { vec![] });
    }
    assert_eq!(objects(&path).len(), exports);
    operations
}

#[tokio::test]
async fn a_save_reads_the_changed_export_and_one_listing_only() {
    let small = operations_of_one_incremental_save(5).await;
    let large = operations_of_one_incremental_save(40).await;
    // The listing of iscsi/ counts one per entry; nothing else grows with the other exports.
    assert_eq!(large - small, 35, "{small} operations at 5, {large} at 40");
}

#[tokio::test]
async fn targets_made_or_removed_behind_the_controllers_back_reach_the_file() {
    let Fixture {
        dir,
        lio,
        path,
        saver,
    } = saved_with(0..3).await;
    // An operator adds an export and removes one, with no request to the saver.
    lio.ensure_export(&spec(7)).await.unwrap();
    lio.remove_export(&spec(0).target, &spec(0).storage_object)
        .await
        .unwrap();
    // The next save, for another volume's change, lists iscsi/ and sees both.
    publish_and_save(&lio, &saver, 1, "node1").await;
    let iqns: Vec<String> = targets(&path).into_iter().map(|(iqn, _)| iqn).collect();
    assert_eq!(
        iqns,
        [1, 2, 7].map(|n| spec(n).target.to_string()),
        "sorted by IQN, the removed target gone, the new one read"
    );
    // The new target's storage object is read through its LUN 0, the removed target's
    // object is looked for again (removed with it here).
    assert_eq!(objects(&path), ["csi-v-001", "csi-v-002", "csi-v-007"]);
    // A target removed by hand whose storage object stays: the object stays in the file.
    let (root, target) = (dir.path().join("cfg"), spec(2).target);
    let tpg = root.join(format!("iscsi/{target}/tpgt_1"));
    for link in std::fs::read_dir(tpg.join("lun/lun_0")).unwrap() {
        std::fs::remove_file(link.unwrap().path()).unwrap();
    }
    std::fs::remove_dir_all(root.join(format!("iscsi/{target}"))).unwrap();
    saver.request_volume(&spec(1).target, &spec(1).storage_object);
    saver.sync().await.unwrap();
    let iqns: Vec<String> = targets(&path).into_iter().map(|(iqn, _)| iqn).collect();
    assert_eq!(iqns, [1, 7].map(|n| spec(n).target.to_string()));
    assert_eq!(objects(&path), ["csi-v-001", "csi-v-002", "csi-v-007"]);
    saver.request();
    saver.sync().await.unwrap();
    assert_eq!(objects(&path), ["csi-v-001", "csi-v-002", "csi-v-007"]);
}

#[tokio::test]
async fn a_hand_edit_inside_a_target_reaches_the_file_on_a_whole_read() {
    let Fixture {
        dir: _dir,
        lio,
        path,
        saver,
    } = saved_with(0..2).await;
    // An ACL added by hand to target 0; the controller changes target 1.
    lio.ensure_acl(&spec(0).target, &acl("by-hand"))
        .await
        .unwrap();
    publish_and_save(&lio, &saver, 1, "node1").await;
    let acls = |path: &Path| -> Vec<Vec<String>> {
        targets(path).into_iter().map(|(_, acls)| acls).collect()
    };
    assert_eq!(
        acls(&path),
        [vec![], vec!["iqn.2024-01.dev.carve:node1".to_string()]]
    );
    // SIGHUP (and reconciliation) ask for a whole read.
    saver.request();
    saver.sync().await.unwrap();
    assert_eq!(
        acls(&path),
        [
            vec!["iqn.2024-01.dev.carve:by-hand".to_string()],
            vec!["iqn.2024-01.dev.carve:node1".to_string()]
        ]
    );
}

#[tokio::test]
async fn sync_returns_once_its_requests_are_in_a_file_a_successful_save_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let lio = empty_lio(&dir.path().join("cfg"));
    lio.ensure_export(&spec(1)).await.unwrap();
    let path = dir.path().join("saveconfig.json");
    let saver = SaveHandle::spawn(Arc::clone(&lio), path.clone(), Duration::from_hours(1));
    saver.sync().await.unwrap();
    assert!(!path.exists(), "nothing requested, nothing written");
    // A save in progress took the request and fails: sync saves again itself.
    lio.ensure_acl(&spec(1).target, &acl("node1"))
        .await
        .unwrap();
    saver.request_volume(&spec(1).target, &spec(1).storage_object);
    let mut in_progress = saver.written.lock().await;
    let waiting = tokio::spawn({
        let saver = saver.clone();
        async move { saver.sync().await }
    });
    tokio::task::yield_now().await;
    std::fs::create_dir(&path).unwrap();
    assert!(saver.save_locked(&mut in_progress).await.is_err());
    std::fs::remove_dir(&path).unwrap();
    drop(in_progress);
    waiting.await.unwrap().unwrap();
    assert_eq!(
        targets(&path),
        [(
            spec(1).target.to_string(),
            vec!["iqn.2024-01.dev.carve:node1".to_string()]
        )]
    );
    assert!(!saver.pending());
}

/// A LIO whose target listing waits for `gate`: a save that reaches it is in progress until
/// the test opens the gate.
#[derive(Debug)]
struct Gated {
    lio: Arc<dyn Lio>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Lio for Gated {
    fn state(&self) -> BoxFuture<'_, Result<LioState>> {
        self.lio.state()
    }
    fn volume_state<'a>(&'a self, t: &'a Iqn, o: &'a str) -> BoxFuture<'a, Result<LioState>> {
        self.lio.volume_state(t, o)
    }
    fn target_names(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            drop(self.gate.acquire().await);
            self.lio.target_names().await
        })
    }
    fn ensure_export<'a>(&'a self, spec: &'a ExportSpec) -> BoxFuture<'a, Result<()>> {
        self.lio.ensure_export(spec)
    }
    fn remove_export<'a>(&'a self, t: &'a Iqn, o: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.lio.remove_export(t, o)
    }
    fn ensure_acl<'a>(&'a self, t: &'a Iqn, acl: &'a AclSpec) -> BoxFuture<'a, Result<()>> {
        self.lio.ensure_acl(t, acl)
    }
    fn remove_acl<'a>(&'a self, t: &'a Iqn, i: &'a Iqn) -> BoxFuture<'a, Result<bool>> {
        self.lio.remove_acl(t, i)
    }
}

#[tokio::test]
async fn sync_waits_for_the_save_in_progress_that_took_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let inner = empty_lio(&dir.path().join("cfg"));
    inner.ensure_export(&spec(1)).await.unwrap();
    inner
        .ensure_acl(&spec(1).target, &acl("node1"))
        .await
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let lio: Arc<dyn Lio> = Arc::new(Gated {
        lio: Arc::clone(&inner),
        gate: Arc::clone(&gate),
    });
    let path = dir.path().join("saveconfig.json");
    let saver = SaveHandle::spawn(Arc::clone(&lio), path.clone(), Duration::from_hours(1));
    gate.add_permits(1);
    saver.request();
    saver.sync().await.unwrap();
    // ControllerUnpublish: the ACL goes, the change is requested, and a save (the background
    // one) takes the request and is still reading LIO when Unpublish asks for its save.
    inner
        .remove_acl(&spec(1).target, &acl("node1").initiator)
        .await
        .unwrap();
    saver.request_volume(&spec(1).target, &spec(1).storage_object);
    let background = tokio::spawn({
        let saver = saver.clone();
        async move { saver.sync().await }
    });
    tokio::task::yield_now().await;
    assert!(
        saver.lock_pending().volumes.is_empty(),
        "the background save took the request"
    );
    let unpublish = tokio::spawn({
        let saver = saver.clone();
        async move { saver.sync().await }
    });
    tokio::task::yield_now().await;
    assert!(
        !unpublish.is_finished(),
        "sync answered while the save that holds its request was still running"
    );
    gate.add_permits(1);
    background.await.unwrap().unwrap();
    unpublish.await.unwrap().unwrap();
    assert_eq!(targets(&path), [(spec(1).target.to_string(), vec![])]);
    assert!(!saver.pending());
}

#[tokio::test]
async fn a_hand_made_target_with_capitals_is_read_with_everything() {
    let Fixture {
        dir,
        lio,
        path,
        saver,
    } = saved_with([1]).await;
    let root = dir.path().join("cfg");
    // Carve's Iqn lowercases; this directory's name cannot be read through it.
    lio.ensure_export(&spec(2)).await.unwrap();
    let by_hand = "iqn.2024-01.dev.carve:By-Hand";
    std::fs::rename(
        root.join(format!("iscsi/{}", spec(2).target)),
        root.join(format!("iscsi/{by_hand}")),
    )
    .unwrap();
    saver.request_volume(&spec(1).target, &spec(1).storage_object);
    saver.sync().await.unwrap();
    let iqns: Vec<String> = targets(&path).into_iter().map(|(iqn, _)| iqn).collect();
    assert_eq!(iqns, [by_hand.to_string(), spec(1).target.to_string()]);
    assert_eq!(objects(&path), ["csi-v-001", "csi-v-002"]);
    // Known from then on: the next save keeps it once.
    saver.request_volume(&spec(1).target, &spec(1).storage_object);
    saver.sync().await.unwrap();
    assert_eq!(targets(&path).len(), 2);
}

#[tokio::test]
async fn every_mutation_through_saved_lio_asks_for_its_export_even_when_it_fails() {
    let Fixture {
        dir: _dir,
        lio,
        path,
        saver,
    } = saved_with([1]).await;
    let saved = crate::lio::saved::SavedLio::new(Arc::clone(&lio), saver.clone());
    saved
        .ensure_acl(&spec(1).target, &acl("node1"))
        .await
        .unwrap();
    assert!(saver.pending(), "a granted ACL asks for a save");
    saver.sync().await.unwrap();
    assert_eq!(
        targets(&path),
        [(
            spec(1).target.to_string(),
            vec!["iqn.2024-01.dev.carve:node1".to_string()]
        )]
    );
    saved
        .remove_acl(&spec(1).target, &acl("node1").initiator)
        .await
        .unwrap();
    saver.sync().await.unwrap();
    assert_eq!(targets(&path), [(spec(1).target.to_string(), vec![])]);
    // A failed call asks too (here an ACL on a target that does not exist).
    assert!(
        saved
            .ensure_acl(&spec(9).target, &acl("node1"))
            .await
            .is_err()
    );
    assert!(saver.pending(), "a failed call asks for a save as well");
    saved.ensure_export(&spec(2)).await.unwrap();
    saved
        .remove_export(&spec(1).target, &spec(1).storage_object)
        .await
        .unwrap();
    saver.sync().await.unwrap();
    assert_eq!(objects(&path), ["csi-v-002"]);
}

/// While a hold lives, coalesced saves wait and the file keeps what it held; `sync` still
/// writes at once; the save waiting is written when the hold is dropped.
#[tokio::test]
async fn a_hold_keeps_coalesced_saves_back_but_not_sync() {
    let dir = tempfile::tempdir().unwrap();
    let lio = empty_lio(&dir.path().join("cfg"));
    let path = dir.path().join("saveconfig.json");
    let saver = SaveHandle::spawn(Arc::clone(&lio), path.clone(), Duration::from_millis(20));
    let hold = saver.hold().await;
    lio.ensure_export(&spec(1)).await.unwrap();
    saver.request_volume(&spec(1).target, &spec(1).storage_object);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!path.exists(), "a coalesced save was written while held");
    saver.sync().await.unwrap();
    assert_eq!(targets(&path).len(), 1, "sync writes while held");
    lio.ensure_export(&spec(2)).await.unwrap();
    saver.request_volume(&spec(2).target, &spec(2).storage_object);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        targets(&path).len(),
        1,
        "a coalesced save was written while held"
    );
    drop(hold);
    for _ in 0..100 {
        if targets(&path).len() == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the save held back was not written after the hold: {:?}",
        targets(&path)
    );
}

/// A save requested with a whole read the caller made starts from it: it reads one listing and
/// what changed since, and the file holds the changes made after the read too.
#[tokio::test]
async fn a_save_from_the_callers_read_reads_only_what_changed_since() {
    let exports = 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cfg");
    let lio = empty_lio(&root);
    for n in 0..exports {
        lio.ensure_export(&spec(n)).await.unwrap();
    }
    let path = dir.path().join("saveconfig.json");
    let saver = SaveHandle::spawn(Arc::clone(&lio), path.clone(), Duration::from_hours(1));
    let mark = saver.mark();
    let read = lio.state().await.unwrap();
    // Changed after the read: an ACL through the saver's request, and a new export.
    lio.ensure_acl(&spec(3).target, &acl("node1"))
        .await
        .unwrap();
    saver.request_volume(&spec(3).target, &spec(3).storage_object);
    lio.ensure_export(&spec(exports)).await.unwrap();
    saver.request_since(mark, read);
    let before = tally::under(&root);
    saver.sync().await.unwrap();
    let operations = tally::under(&root) - before;
    let found = targets(&path);
    assert_eq!(found.len(), exports + 1);
    assert_eq!(found[3].1, ["iqn.2024-01.dev.carve:node1"]);
    assert_eq!(objects(&path).len(), exports + 1);
    // A whole read of 21 exports is several hundred operations; this is a listing and two.
    let whole = {
        let before = tally::under(&root);
        lio.state().await.unwrap();
        tally::under(&root) - before
    };
    assert!(
        operations * 3 < whole,
        "{operations} operations against {whole} for a whole read"
    );
}

/// When most exports known changed (a restore after a wipe), the save reads the whole state
/// once instead of each changed export.
#[tokio::test]
async fn a_save_after_most_exports_changed_reads_the_whole_state() {
    let Fixture {
        dir,
        lio,
        path,
        saver,
    } = saved_with(0..4).await;
    let root = dir.path().join("cfg");
    for n in 0..4 {
        lio.ensure_acl(&spec(n).target, &acl("node1"))
            .await
            .unwrap();
        saver.request_volume(&spec(n).target, &spec(n).storage_object);
    }
    let before = tally::under(&root);
    saver.sync().await.unwrap();
    let operations = tally::under(&root) - before;
    let whole = {
        let before = tally::under(&root);
        lio.state().await.unwrap();
        tally::under(&root) - before
    };
    assert_eq!(operations, whole, "not one whole read");
    assert!(targets(&path).iter().all(|(_, acls)| acls.len() == 1));
}

/// Four exports saved, then node1's ACL on export 1, saved.
async fn saved_with_acl() -> Fixture {
    let f = saved_with(0..4).await;
    publish_and_save(&f.lio, &f.saver, 1, "node1").await;
    f
}

/// What ControllerUnpublish does to LIO and the saver: `node`'s ACL on export `n` removed,
/// its request.
async fn revoke(lio: &Arc<dyn Lio>, saver: &SaveHandle, n: usize, node: &str) {
    let initiator = Iqn::parse(&format!("iqn.2024-01.dev.carve:{node}")).unwrap();
    assert!(lio.remove_acl(&spec(n).target, &initiator).await.unwrap());
    saver.request_volume(&spec(n).target, &spec(n).storage_object);
}

/// A `sync` that fails because the file at `path` cannot be written (then it can again).
async fn failed_sync(saver: &SaveHandle, path: &Path) {
    std::fs::remove_file(path).unwrap();
    std::fs::create_dir(path).unwrap();
    assert!(saver.sync().await.is_err(), "the file cannot be written");
    std::fs::remove_dir(path).unwrap();
}

fn assert_no_acls(path: &Path) {
    assert!(
        targets(path).iter().all(|(_, acls)| acls.is_empty()),
        "a revoked ACL is back in the file: {:?}",
        targets(path)
    );
}

/// A read offered after a save took requests since it began is not used: that save may have
/// failed (losing what it took) after an ACL was revoked, and the read still holds the ACL.
#[tokio::test]
async fn a_read_older_than_a_failed_save_is_not_the_next_saves_start() {
    let f = saved_with_acl().await;
    let mark = f.saver.mark();
    let read = f.lio.state().await.unwrap();
    // ControllerUnpublish: the ACL goes, its save fails.
    revoke(&f.lio, &f.saver, 1, "node1").await;
    failed_sync(&f.saver, &f.path).await;
    // The pass ends and offers its read, which still holds the ACL.
    f.saver.request_since(mark, read);
    f.saver.sync().await.unwrap();
    assert_no_acls(&f.path);
}

/// A save that started from an offered read and failed leaves nothing to start from: the next
/// save reads the whole state (not the state written before, which still has a revoked ACL).
#[tokio::test]
async fn a_failed_save_from_an_offered_read_is_followed_by_a_whole_read() {
    let f = saved_with_acl().await;
    let mark = f.saver.mark();
    revoke(&f.lio, &f.saver, 1, "node1").await;
    f.saver.request_since(mark, f.lio.state().await.unwrap());
    failed_sync(&f.saver, &f.path).await;
    f.saver.sync().await.unwrap();
    assert_no_acls(&f.path);
}
