//! `holds_volume` for block publications: the disk's own bind, a dropped disk's bind, and the
//! read-only device-mapper view a read-only publication binds instead of the disk.

use crate::{
    mount::mountinfo,
    ops::holds_volume,
    records::{Access, sample},
};
use std::path::Path;

fn table(root: &str, point: &str) -> Vec<mountinfo::MountInfo> {
    mountinfo::parse(&format!(
        "900 25 0:5 {root} {point} rw,relatime shared:2 - devtmpfs udev rw,size=1k\n"
    ))
    .unwrap()
}

#[test]
fn a_block_target_is_the_volumes_through_its_disk_or_its_own_read_only_view() {
    let mut record = sample("csi-v1", Path::new("/k/staging"), Access::Block);
    record.device = Some("sdb".into());
    let target = Path::new("/k/pods/p/volume");
    let point = target.to_str().unwrap();
    assert!(holds_volume(&table("/sdb", point), &record, target, None));
    assert!(holds_volume(
        &table("/sdb//deleted", point),
        &record,
        target,
        None
    ));
    // A read-only publication binds its view dm-3: the volume's only when dm-3 is that view.
    let view = table("/dm-3", point);
    assert!(holds_volume(&view, &record, target, Some("dm-3")));
    assert!(!holds_volume(&view, &record, target, None));
    assert!(!holds_volume(&view, &record, target, Some("dm-4")));
    // Another disk bound there is not this volume.
    assert!(!holds_volume(&table("/sdc", point), &record, target, None));
}
