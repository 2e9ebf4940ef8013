//! The queue's side of space accounting: a survey another mutation overtook is read again
//! inside the queue before a claim is admitted, so claims made from the same stale figures
//! cannot all pass.

use crate::{
    lvm::{Allocation, Claim, Within},
    ops::testing::{FakeHost, lv_row, pool_row, thin_claim as thin, thin_pool},
};
use csi_common::{Kind, ids::LvName, testing::refused};

const MIB: u64 = 1 << 20;

fn expect_lvcreate(host: &FakeHost, lv: &LvName, allocation: &Allocation) {
    host.expect_lvcreate(lv, 512 * MIB, allocation, &[]);
}

#[tokio::test]
async fn claims_from_one_stale_survey_are_admitted_against_fresh_figures() {
    let host = FakeHost::new();
    let lvm = host.ctx.lvm().unwrap().clone();
    let pool = thin_pool();
    let (a, b, c) = (
        LvName::for_volume("a"),
        LvName::for_volume("b"),
        LvName::for_volume("c"),
    );
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(1 << 30)]);
    let seen = lvm.survey().await.unwrap();
    let within = |bytes| Within {
        claim: thin(bytes),
        seen: Some(&seen),
    };

    // Still current: admitted as it is, no second report.
    expect_lvcreate(&host, &a, &pool);
    lvm.create_within(&a, 512 * MIB, &pool, &[], within(512 * MIB))
        .await
        .unwrap();

    // Overtaken by the first lvcreate: read again, and the first promise counts.
    let row_a = lv_row(a.as_str(), 512 * MIB, Some("pool"), &[]);
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(1 << 30), row_a.clone()]);
    expect_lvcreate(&host, &b, &pool);
    lvm.create_within(&b, 512 * MIB, &pool, &[], within(512 * MIB))
        .await
        .unwrap();

    // The pool's whole promise is taken: refused before lvcreate, figures named.
    let row_b = lv_row(b.as_str(), 512 * MIB, Some("pool"), &[]);
    host.expect_survey(10 << 30, 4 * MIB, &[pool_row(1 << 30), row_a, row_b]);
    let taken = lvm.create_within(&c, 512 * MIB, &pool, &[], within(512 * MIB));
    let err = refused(taken.await, Kind::ResourceExhausted);
    assert!(
        err.message().contains("1073741824 already are, 0 left"),
        "{err}"
    );
    host.finish();
}

#[tokio::test]
async fn a_failed_mutation_also_makes_the_survey_stale() {
    let host = FakeHost::new();
    let lvm = host.ctx.lvm().unwrap().clone();
    let a = LvName::for_volume("a");
    host.expect_survey(1 << 30, 4 * MIB, &[]);
    let seen = lvm.survey().await.unwrap();
    host.expect_lvremove_failing(a.as_str());
    assert!(lvm.remove(&a).await.is_err());
    // The linear claim is checked against a fresh report showing the VG full.
    host.expect_survey(0, 4 * MIB, &[lv_row("other", 1 << 30, None, &[])]);
    let within = Within {
        claim: Claim::Linear { bytes: 4 * MIB },
        seen: Some(&seen),
    };
    let full = lvm.create_within(&a, 4 * MIB, &Allocation::Linear, &[], within);
    refused(full.await, Kind::ResourceExhausted);
    host.finish();
}
