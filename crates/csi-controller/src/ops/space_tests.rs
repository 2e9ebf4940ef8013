//! The queue's side of space accounting: a survey another mutation overtook is read again
//! inside the queue before a claim is admitted, so claims made from the same stale figures
//! cannot all pass.

use crate::{
    lvm::{Allocation, Claim, Within, argv},
    ops::testing::{FakeHost, VG, lv_row, pool_row},
};
use csi_common::{Kind, command::Expectation, ids::LvName};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const T: Duration = Duration::from_secs(5);

fn thin(bytes: u64) -> Claim<'static> {
    Claim::Thin {
        pool: "pool",
        bytes,
        ratio: 1.0,
        zeroing_required: true,
    }
}

fn expect_lvcreate(host: &FakeHost, lv: &LvName, allocation: &Allocation) {
    let cmd = argv::lvcreate(VG, lv, 512 * MIB, allocation, &[], T);
    host.expect(Expectation::new(
        std::iter::once(cmd.program().to_string())
            .chain(cmd.arg_values().map(str::to_string))
            .collect::<Vec<_>>(),
    ));
}

#[tokio::test]
async fn claims_from_one_stale_survey_are_admitted_against_fresh_figures() {
    let host = FakeHost::new();
    let lvm = host.ctx.lvm().unwrap().clone();
    let pool = Allocation::Thin {
        pool: "pool".into(),
    };
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
    let err = lvm
        .create_within(&c, 512 * MIB, &pool, &[], within(512 * MIB))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::ResourceExhausted, "{err}");
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
    host.expect(
        Expectation::new(
            std::iter::once("lvremove".to_string())
                .chain(argv::lvremove(VG, &a, T).arg_values().map(str::to_string))
                .collect::<Vec<_>>(),
        )
        .fails(5, "  Internal error: something odd\n"),
    );
    assert!(lvm.remove(&a).await.is_err());
    // The linear claim is checked against a fresh report showing the VG full.
    host.expect_survey(0, 4 * MIB, &[lv_row("other", 1 << 30, None, &[])]);
    let within = Within {
        claim: Claim::Linear { bytes: 4 * MIB },
        seen: Some(&seen),
    };
    let err = lvm
        .create_within(&a, 4 * MIB, &Allocation::Linear, &[], within)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::ResourceExhausted, "{err}");
    host.finish();
}
