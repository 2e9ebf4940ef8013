//! The ledger inside [`LvmCli`] under the controller's operations: seeded by one report in the
//! queue, then reads and admission run no LVM command, and a failed command makes the next
//! admission read LVM again.

use crate::{
    lvm::{Allocation, Claim, LvRow, Lvm, Within, tags::PUBLISHED},
    ops::{
        self,
        capability::mount,
        create_volume::Created,
        publish::Publish,
        testing::{
            FakeHost, NODE1, carve_tags, create_request, ext4_record, lv_row, pool_row,
            publish_request, range, thin_claim, thin_pool,
        },
    },
};
use csi_common::{Kind, ids::LvName, testing::refused};
use csi_proto::v1::volume_capability::access_mode::Mode;
use std::{collections::HashMap, sync::Arc, time::Duration};

const MIB: u64 = 1 << 20;

fn expect_lvcreate(host: &FakeHost, lv: &LvName, size: u64, allocation: &Allocation) {
    host.expect_lvcreate(lv, size, allocation, &[]);
}

/// A claim of `bytes` in the thin pool, admitted on the ledger's figures.
fn thin(bytes: u64) -> Within<'static> {
    Within {
        claim: thin_claim(bytes),
        seen: None,
    }
}

/// `host` with its LVM ledger seeded by one survey: `free` bytes in the VG, 4 MiB extents and
/// `rows` as `lvs` reports them.
async fn seeded(host: FakeHost, free: u64, rows: &[LvRow]) -> (FakeHost, Arc<dyn Lvm>) {
    let lvm = host.ctx.lvm().unwrap().clone();
    host.expect_survey(free, 4 * MIB, rows);
    lvm.resync().await.unwrap();
    (host, lvm)
}

#[tokio::test]
async fn after_one_seed_admission_and_reads_run_no_lvm_command() {
    let pool = thin_pool();
    let (host, lvm) = seeded(FakeHost::with_ledger(), 8 * MIB, &[pool_row(1 << 30)]).await;
    let names: Vec<LvName> = ["a", "b", "c", "d"]
        .into_iter()
        .map(LvName::for_volume)
        .collect();
    let linear = |bytes| Within {
        claim: Claim::Linear { bytes },
        seen: None,
    };
    // Two linear LVs fill the VG's 8 MiB; the third is refused from the ledger's figures.
    for lv in &names[..2] {
        expect_lvcreate(&host, lv, 4 * MIB, &Allocation::Linear);
        lvm.create_within(lv, 4 * MIB, &Allocation::Linear, &[], linear(4 * MIB))
            .await
            .unwrap();
    }
    let third = lvm.create_within(
        &names[2],
        4 * MIB,
        &Allocation::Linear,
        &[],
        linear(4 * MIB),
    );
    let err = refused(third.await, Kind::ResourceExhausted);
    assert!(err.message().contains("0 bytes free"), "{err}");
    // Thin promises add up in the ledger too; the pool itself is read at each thin admission.
    host.expect_pool_dm(&pool_row(1 << 30));
    expect_lvcreate(&host, &names[2], 768 * MIB, &pool);
    lvm.create_within(&names[2], 768 * MIB, &pool, &[], thin(768 * MIB))
        .await
        .unwrap();
    host.expect_pool_dm(&pool_row(1 << 30));
    let err = lvm
        .create_within(&names[3], 512 * MIB, &pool, &[], thin(512 * MIB))
        .await
        .unwrap_err();
    assert!(err.message().contains("805306368 already are"), "{err}");
    // Reads are answered from the ledger.
    assert_eq!(lvm.list().await.unwrap().len(), 4);
    assert_eq!(lvm.vg().await.unwrap().free, 0);
    assert!(lvm.get(&names[0]).await.unwrap().is_some());
    assert!(lvm.get(&names[3]).await.unwrap().is_none());
    assert_eq!(lvm.survey().await.unwrap().lvs.len(), 4);
    host.finish();
}

#[tokio::test]
async fn a_failed_command_makes_the_next_admission_read_lvm() {
    let a = LvName::for_volume("a");
    let (host, lvm) = seeded(FakeHost::with_ledger(), 1 << 30, &[]).await;
    host.expect_lvremove_failing(a.as_str());
    assert!(lvm.remove(&a).await.is_err());
    // The ledger is forgotten: the claim is admitted against a fresh report, which shows the
    // VG full (someone else took the space), and the report seeds the ledger again.
    host.expect_survey(0, 4 * MIB, &[lv_row("other", 1 << 30, None, &[])]);
    let within = Within {
        claim: Claim::Linear { bytes: 4 * MIB },
        seen: None,
    };
    let full = lvm.create_within(&a, 4 * MIB, &Allocation::Linear, &[], within);
    refused(full.await, Kind::ResourceExhausted);
    assert_eq!(lvm.list().await.unwrap().len(), 1, "read from the new seed");
    host.finish();
}

#[tokio::test]
async fn create_then_publish_runs_lvcreate_and_one_lvchange_only() {
    let (host, _) = seeded(FakeHost::with_ledger(), 10 << 30, &[pool_row(8 << 30)]).await;
    let caps = [mount("ext4", Mode::SingleNodeWriter)];
    let range = range(8 * MIB, 0);
    let params = HashMap::new();
    let req = create_request("pvc-ledger", &caps, Some(&range), &params);
    let lv = LvName::for_volume("pvc-ledger");
    let tags = ext4_record("pvc-ledger", 8 * MIB).creation_tags();
    host.expect_lvcreate(&lv, 8 * MIB, &Allocation::Linear, &tags);
    let created = ops::create_volume::create_volume(&host.ctx, req)
        .await
        .unwrap();
    let Created::Created(volume) = created else {
        panic!("not created: {created:?}")
    };
    // Publish: no `lvs`, one `lvchange` for the durable records (used marker, publication)
    // before the ACL.
    host.expect_retag(
        lv.as_str(),
        &[],
        &[crate::lvm::tags::USED, &format!("{PUBLISHED}rw:{NODE1}")],
    );
    let secrets = HashMap::new();
    let cap = mount("ext4", Mode::SingleNodeWriter);
    let id = volume.id.to_string();
    let req = Publish {
        volume_id: &id,
        node_id: NODE1,
        capability: Some(&cap),
        readonly: false,
        secrets: &secrets,
    };
    let published = ops::publish::publish(&host.ctx, req).await.unwrap();
    assert!(
        published.blank,
        "a new linear volume is blank at its first publish"
    );
    assert_eq!(host.acls(lv.as_str()), [NODE1]);
    // The ledger kept both tags: a repeat is recognised without LVM and writes nothing.
    ops::publish::publish(&host.ctx, req)
        .await
        .map(|p| assert!(!p.blank, "used from its first publish on"))
        .unwrap();
    host.finish();
}

#[tokio::test]
async fn a_pool_that_stopped_zeroing_by_hand_is_refused_at_once() {
    let (host, lvm) = seeded(FakeHost::with_ledger(), 1 << 30, &[pool_row(1 << 30)]).await;
    let mut unzeroed = pool_row(1 << 30);
    unzeroed.attr = "twi-aot---".into();
    host.expect_pool_dm(&unzeroed);
    let lv = LvName::for_volume("a");
    let pool = thin_pool();
    let unzeroed = lvm.create_within(&lv, 4 * MIB, &pool, &[], thin(4 * MIB));
    refused(unzeroed.await, Kind::FailedPrecondition);
    host.finish();
}

#[tokio::test]
async fn a_resync_picks_up_hand_edits() {
    let (host, lvm) = seeded(FakeHost::with_ledger(), 1 << 30, &[pool_row(1 << 30)]).await;
    let hand = LvName::for_volume("by-hand");
    assert!(lvm.get(&hand).await.unwrap().is_none());
    // An operator made an LV and tagged it; the resync (timer, SIGHUP, GetCapacity) sees it.
    let mut tags = carve_tags("by-hand");
    tags.push(format!("{PUBLISHED}rw:{NODE1}"));
    let row = lv_row(hand.as_str(), 8 * MIB, Some("pool"), &tags);
    host.expect_survey(1 << 30, 4 * MIB, &[pool_row(1 << 30), row]);
    lvm.resync().await.unwrap();
    let seen = lvm.get(&hand).await.unwrap().expect("picked up");
    assert_eq!(seen.tags, tags);
    assert_eq!(
        seen.data_percent, None,
        "published: may have been written since"
    );
    host.finish();
}

#[tokio::test]
async fn a_repeated_publish_of_an_unwritten_thin_volume_answers_the_same_context() {
    let row = lv_row("csi-v-1", 8 * MIB, Some("pool"), &carve_tags("v"));
    let (host, _) = seeded(
        FakeHost::with_ledger(),
        1 << 30,
        &[pool_row(1 << 30), row.clone()],
    )
    .await;
    host.export(&row).await;
    let (cap, secrets) = (mount("ext4", Mode::SingleNodeWriter), HashMap::new());
    let req = publish_request(NODE1, &cap, false, &secrets);
    // First publish: the ledger's count (0, no node could write) says blank; no LVM read.
    host.expect_retag("csi-v-1", &[], &[&format!("{PUBLISHED}rw:{NODE1}")]);
    let first = ops::publish::publish(&host.ctx, req).await.unwrap();
    assert!(first.blank);
    // The repeat: the ledger no longer vouches for the count, LVM is asked, and it is still 0.
    host.expect_lvs_one("csi-v-1", std::slice::from_ref(&row));
    let again = ops::publish::publish(&host.ctx, req).await.unwrap();
    assert_eq!(again.to_context(), first.to_context());
    // Written since: LVM's count says so.
    let mut written = row.clone();
    written.data_percent = Some(1.5);
    host.expect_lvs_one("csi-v-1", &[written]);
    assert!(!ops::publish::publish(&host.ctx, req).await.unwrap().blank);
    host.finish();
}

#[tokio::test]
async fn a_fresh_pool_reading_admits_thin_claims_with_no_lvm_read_and_a_refresh_updates_it() {
    let pool = thin_pool();
    let (a, b) = (LvName::for_volume("a"), LvName::for_volume("b"));
    let host = FakeHost::with_pool_max_age(Duration::from_hours(1));
    let (host, lvm) = seeded(host, 8 * MIB, &[pool_row(1 << 30)]).await;
    // The seed's reading is fresh: lvcreate is the only command.
    expect_lvcreate(&host, &a, 64 * MIB, &pool);
    lvm.create_within(&a, 64 * MIB, &pool, &[], thin(64 * MIB))
        .await
        .unwrap();
    // The refresher reads the pool full: the next thin claim is refused on that reading,
    // with no LVM command of its own.
    let mut full = pool_row(1 << 30);
    full.data_percent = Some(100.0);
    host.expect_pool_dm(&full);
    lvm.refresh_pool("pool").await.unwrap();
    let full = lvm.create_within(&b, 64 * MIB, &pool, &[], thin(64 * MIB));
    let err = refused(full.await, Kind::ResourceExhausted);
    assert!(err.message().contains("full"), "{err}");
    // A pool that stopped zeroing is refused the same way.
    let mut unzeroed = pool_row(1 << 30);
    unzeroed.attr = "twi-aotz--".replace('z', "-");
    host.expect_pool_dm(&unzeroed);
    lvm.refresh_pool("pool").await.unwrap();
    let unzeroed = lvm.create_within(&b, 64 * MIB, &pool, &[], thin(64 * MIB));
    refused(unzeroed.await, Kind::FailedPrecondition);
    host.finish();
}

#[tokio::test]
async fn a_forgotten_record_reads_the_pool_again_at_a_thin_admission() {
    let pool = thin_pool();
    let a = LvName::for_volume("a");
    let host = FakeHost::with_pool_max_age(Duration::from_hours(1));
    let (host, lvm) = seeded(host, 8 * MIB, &[pool_row(1 << 30)]).await;
    // A failed mutation forgets the record, and the next admission seeds it again (one
    // survey, which reads the pool too).
    host.expect_lvremove_failing(a.as_str());
    assert!(lvm.remove(&a).await.is_err());
    host.expect_survey(8 * MIB, 4 * MIB, &[pool_row(1 << 30)]);
    expect_lvcreate(&host, &a, 64 * MIB, &pool);
    lvm.create_within(&a, 64 * MIB, &pool, &[], thin(64 * MIB))
        .await
        .unwrap();
    host.finish();
}

#[tokio::test]
async fn a_pool_device_mapper_cannot_show_is_read_from_lvm() {
    let pool = thin_pool();
    let a = LvName::for_volume("a");
    let (host, lvm) = seeded(FakeHost::with_ledger(), 8 * MIB, &[pool_row(1 << 30)]).await;
    // Inactive (or no dmsetup): `lvs vg/pool`, in the queue, as before device-mapper was read.
    host.expect_pool_dm_missing("pool");
    host.expect_pool(&pool_row(1 << 30));
    expect_lvcreate(&host, &a, 64 * MIB, &pool);
    lvm.create_within(&a, 64 * MIB, &pool, &[], thin(64 * MIB))
        .await
        .unwrap();
    // The refresher falls back the same way, and a pool LVM no longer has leaves the record.
    host.expect_pool_dm_missing("pool");
    host.expect_pool_gone("pool");
    lvm.refresh_pool("pool").await.unwrap();
    assert!(
        !lvm.survey()
            .await
            .unwrap()
            .lvs
            .iter()
            .any(LvRow::is_thin_pool),
        "the pool's row is gone"
    );
    host.finish();
}

/// The first publish of a new linear volume whose grant fails, on the ledger: its records are
/// taken back only once LIO no longer holds the ACL, and the retry then answers what LIO and
/// the ledger say.
#[tokio::test]
async fn a_failed_first_grant_is_undone_only_once_its_acl_is_gone() {
    for acl_removable in [true, false] {
        let row = lv_row("csi-v-1", 8 * MIB, None, &carve_tags("v"));
        let (host, _) = seeded(FakeHost::with_ledger(), 1 << 30, std::slice::from_ref(&row)).await;
        host.export(&row).await;
        let obstacle = host.fail_grants("csi-v-1");
        // A link left in the ACL's directory makes its removal fail, as on configfs.
        let junk = host.root.join(format!(
            "iscsi/{}/tpgt_1/acls/{NODE1}/junk",
            host.target("csi-v-1")
        ));
        if !acl_removable {
            std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink("/nonexistent", &junk).unwrap();
        }
        let records = [crate::lvm::tags::USED, &format!("{PUBLISHED}rw:{NODE1}")];
        host.expect_retag("csi-v-1", &[], &records);
        if acl_removable {
            host.expect_retag("csi-v-1", &records, &[]);
        }
        let (cap, secrets) = (mount("ext4", Mode::SingleNodeWriter), HashMap::new());
        let req = publish_request(NODE1, &cap, false, &secrets);
        ops::publish::publish(&host.ctx, req).await.unwrap_err();
        std::fs::remove_dir(&obstacle).unwrap();
        let _ = std::fs::remove_file(&junk);
        if acl_removable {
            // A first publication again, from the ledger's record: both records anew.
            host.expect_retag("csi-v-1", &[], &records);
        }
        let again = ops::publish::publish(&host.ctx, req).await.unwrap();
        assert_eq!(
            again.blank, acl_removable,
            "blank only if the ACL went before the records did"
        );
        assert_eq!(host.acls("csi-v-1"), [NODE1]);
        host.finish();
    }
}
