//! The ledger alone: each change's effect on the figures, and the age of a thin pool's reading.
//! (Inside `LvmCli` with the controller's operations: csi-controller's `ops/ledger_tests.rs`.)

use super::*;
use crate::lvm::{
    VgRow, space,
    tags::PUBLISHED,
    testing::{NODE1, VG, carve_tags, lv_row, pool_row},
};
use std::time::Duration;

const MIB: u64 = 1 << 20;

fn survey(free: u64, lvs: Vec<LvRow>) -> Survey {
    Survey {
        vg: VgRow {
            name: VG.into(),
            size: 16 << 30,
            free,
            extent_size: 4 * MIB,
        },
        lvs,
        generation: 0,
    }
}

fn seeded(free: u64, lvs: Vec<LvRow>) -> Ledger {
    let mut ledger = Ledger::default();
    ledger.seed(survey(free, lvs));
    ledger
}

#[test]
fn linear_lvs_take_and_give_back_extent_rounded_free_bytes_thin_lvs_do_not() {
    let mut l = seeded(100 * MIB, vec![pool_row(1 << 30)]);
    let tags = vec!["carve.v=1".to_string()];
    l.apply(&Change::Created {
        lv: "a",
        size: 5 * MIB,
        pool: None,
        tags: &tags,
    });
    assert_eq!(l.current().unwrap().vg.free, 92 * MIB, "5 MiB is 2 extents");
    l.apply(&Change::Created {
        lv: "t",
        size: 64 * MIB,
        pool: Some("pool"),
        tags: &tags,
    });
    let s = l.current().unwrap();
    assert_eq!(s.vg.free, 92 * MIB);
    let t = s.lvs.iter().find(|r| r.name == "t").unwrap();
    assert_eq!(
        (t.pool.as_deref(), t.data_percent),
        (Some("pool"), Some(0.0))
    );
    assert_eq!(space::promised(&s.lvs, "pool"), 64 * MIB);
    l.apply(&Change::Extended {
        lv: "a",
        size: 16 * MIB,
    });
    assert_eq!(l.current().unwrap().vg.free, 84 * MIB);
    l.apply(&Change::Renamed {
        from: "a",
        to: "a_wipe",
    });
    l.apply(&Change::Removed { lv: "a_wipe" });
    l.apply(&Change::Removed { lv: "t" });
    let s = l.current().unwrap();
    assert_eq!(s.vg.free, 100 * MIB);
    assert_eq!(s.lvs.len(), 1, "only the pool is left");
}

#[test]
fn tags_and_activation_follow_the_commands() {
    let mut row = lv_row("v", 8 * MIB, None, &carve_tags("v"));
    row.attr = "-wi-------".into();
    let mut l = seeded(0, vec![row]);
    let add = vec!["carve.used".to_string(), format!("{PUBLISHED}rw:{NODE1}")];
    l.apply(&Change::Tagged {
        lv: "v",
        remove: &[],
        add: &add,
    });
    l.apply(&Change::Activated { lv: "v" });
    let v = &l.current().unwrap().lvs[0];
    assert!(v.is_active());
    assert!(add.iter().all(|t| v.tags.contains(t)));
    l.apply(&Change::Tagged {
        lv: "v",
        remove: &add[1..],
        add: &[],
    });
    assert!(!l.current().unwrap().lvs[0].tags.contains(&add[1]));
}

#[test]
fn a_thin_lv_that_may_have_been_written_has_no_data_count() {
    let publication = vec![format!("{PUBLISHED}rw:{NODE1}")];
    let published = lv_row("p", 8 * MIB, Some("pool"), &publication);
    let idle = lv_row("i", 8 * MIB, Some("pool"), &[]);
    let mut l = seeded(0, vec![pool_row(1 << 30), published, idle]);
    let data = |l: &Ledger, name: &str| {
        l.current()
            .unwrap()
            .lvs
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .data_percent
    };
    assert_eq!(
        data(&l, "p"),
        None,
        "published when read: may be written since"
    );
    assert_eq!(data(&l, "i"), Some(0.0));
    assert_eq!(data(&l, "pool"), Some(0.0), "the pool's own figure is kept");
    l.apply(&Change::Tagged {
        lv: "i",
        remove: &[],
        add: &publication,
    });
    assert_eq!(
        data(&l, "i"),
        None,
        "published now: may be written from here on"
    );
}

#[test]
fn a_change_that_does_not_fit_forgets_the_record() {
    for change in [
        Change::Removed { lv: "nope" },
        Change::Activated { lv: "nope" },
        Change::Created {
            lv: "v",
            size: MIB,
            pool: None,
            tags: &[],
        },
        Change::Created {
            lv: "big",
            size: 1 << 30,
            pool: None,
            tags: &[],
        },
        Change::Unmodelled,
    ] {
        let mut l = seeded(8 * MIB, vec![lv_row("v", 8 * MIB, None, &[])]);
        l.apply(&change);
        assert!(l.current().is_none(), "{change:?}");
    }
    let mut l = Ledger::default();
    l.apply(&Change::Removed { lv: "v" });
    assert!(l.current().is_none(), "nothing to change before a seed");
}

#[test]
fn a_pool_reading_has_an_age_from_its_seed_or_read_until_forgotten() {
    let mut l = Ledger::default();
    assert_eq!(l.pool_age("pool"), None, "nothing read yet");
    l.seed(survey(1 << 30, vec![pool_row(1 << 30)]));
    let seeded = l.pool_age("pool").expect("the seed read the pool");
    assert!(seeded < Duration::from_mins(1));
    assert_eq!(l.pool_age("other"), None, "no such pool");
    l.pool_read("pool", None);
    assert_eq!(l.pool_age("pool"), None, "the pool is gone");
    l.pool_read("pool", Some(pool_row(1 << 30)));
    assert!(l.pool_age("pool").is_some());
    l.forget();
    assert_eq!(
        l.pool_age("pool"),
        None,
        "a forgotten record has no reading"
    );
}
