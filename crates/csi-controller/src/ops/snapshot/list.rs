//! ListSnapshots (filters by snapshot id and by source volume, pagination) and GetSnapshot.
//!
//! Invariants: entries are sorted by snapshot id; `next_token` is the id of the first entry of
//! the next page, so pages stay correct when snapshots come and go in between; a token that is
//! not a snapshot id Carve could issue is `Aborted` (spec); a filter naming an id Carve could
//! never have issued matches nothing (an empty list, not an error); snapshots of a deleted
//! volume are still listed, with the source id recorded at creation.

use super::{Snapshot, find, list, parse_id};
use crate::ops::Ctx;
use csi_common::{Error, Result, ids::LvName};

/// ListSnapshots' filters and paging.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListSnapshots<'a> {
    /// At most this many entries (0: no limit; negative: `InvalidArgument`).
    pub max_entries: i32,
    /// Where to start (a previous `next_token`), or `""`.
    pub starting_token: &'a str,
    /// Only snapshots of this volume, if not empty.
    pub source_volume_id: &'a str,
    /// Only this snapshot, if not empty.
    pub snapshot_id: &'a str,
}

/// One page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The entries.
    pub entries: Vec<Snapshot>,
    /// The token for the next page (`""`: none).
    pub next_token: String,
}

/// ListSnapshots.
pub async fn list_snapshots(ctx: &Ctx, req: ListSnapshots<'_>) -> Result<Page> {
    if req.max_entries < 0 {
        return Err(Error::invalid_argument("max_entries must not be negative"));
    }
    let start = match req.starting_token {
        "" => None,
        token => Some(
            LvName::parse(token)
                .ok()
                .filter(|lv| lv.as_str().starts_with(super::PREFIX))
                .ok_or_else(|| Error::aborted(format!("starting_token {token:?} is not valid")))?,
        ),
    };
    let snapshots = match req.snapshot_id {
        "" => list(ctx).await?,
        raw => match parse_id(raw)? {
            Some(id) => find(ctx, &id).await?.into_iter().collect(),
            None => Vec::new(),
        },
    };
    let mut rest = snapshots
        .into_iter()
        .filter(|s| {
            req.source_volume_id.is_empty()
                || s.record.source_volume.as_str() == req.source_volume_id
        })
        .filter(|s| start.as_ref().is_none_or(|t| &s.id >= t))
        .peekable();
    // Not negative (checked above); 0 means no limit.
    let limit = match usize::try_from(req.max_entries) {
        Ok(0) | Err(_) => usize::MAX,
        Ok(n) => n,
    };
    let mut entries = Vec::new();
    while entries.len() < limit {
        match rest.next() {
            Some(s) => entries.push(s),
            None => break,
        }
    }
    let next_token = rest.peek().map(|s| s.id.to_string()).unwrap_or_default();
    Ok(Page {
        entries,
        next_token,
    })
}

/// GetSnapshot: the snapshot, or `NotFound`.
pub async fn get_snapshot(ctx: &Ctx, raw_id: &str) -> Result<Snapshot> {
    let missing = || Error::not_found(format!("snapshot {raw_id:?} does not exist"));
    let id = parse_id(raw_id)?.ok_or_else(missing)?;
    find(ctx, &id).await?.ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{
        snapshot::testing::snap_row,
        testing::{FakeHost, carve_tags, lv_row, pool_row},
    };
    use csi_common::{Kind, testing::refused};

    fn rows() -> Vec<crate::lvm::LvRow> {
        vec![
            pool_row(8 << 30),
            lv_row("csi-v-1", 8 << 20, Some("pool"), &carve_tags("v")),
            snap_row("snap-a-1", 8 << 20, "a", "csi-v-1"),
            snap_row("snap-b-1", 8 << 20, "b", "csi-w-1"),
            snap_row("snap-c-1", 8 << 20, "c", "csi-v-1"),
            lv_row("snap-foreign-1", 8 << 20, Some("pool"), &[]),
        ]
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.entries.iter().map(|s| s.id.as_str()).collect()
    }

    /// A page of at most `max_entries` from `starting_token`, no filter.
    fn page(max_entries: i32, starting_token: &str) -> ListSnapshots<'_> {
        ListSnapshots {
            max_entries,
            starting_token,
            ..Default::default()
        }
    }

    /// Only the snapshots of `source_volume_id`.
    fn of_source(source_volume_id: &str) -> ListSnapshots<'_> {
        ListSnapshots {
            source_volume_id,
            ..Default::default()
        }
    }

    /// Only the snapshot `snapshot_id`.
    fn by_id(snapshot_id: &str) -> ListSnapshots<'_> {
        ListSnapshots {
            snapshot_id,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn pages_and_filters_by_source() {
        let host = FakeHost::new();
        host.expect_lvs(&rows());
        let first = list_snapshots(&host.ctx, page(2, "")).await.unwrap();
        assert_eq!(ids(&first), ["snap-a-1", "snap-b-1"]);
        assert_eq!(first.next_token, "snap-c-1");
        host.expect_lvs(&rows());
        let last = list_snapshots(&host.ctx, page(2, &first.next_token))
            .await
            .unwrap();
        assert_eq!(
            (ids(&last), last.next_token.as_str()),
            (vec!["snap-c-1"], "")
        );
        host.expect_lvs(&rows());
        let of_v = list_snapshots(&host.ctx, of_source("csi-v-1"))
            .await
            .unwrap();
        assert_eq!(ids(&of_v), ["snap-a-1", "snap-c-1"]);
        host.expect_lvs(&rows());
        let none = list_snapshots(&host.ctx, of_source("not-a-volume"))
            .await
            .unwrap();
        assert!(none.entries.is_empty());
        host.finish();
    }

    #[tokio::test]
    async fn filters_by_id_and_refuses_bad_tokens() {
        let host = FakeHost::new();
        let row = snap_row("snap-b-1", 8 << 20, "b", "csi-w-1");
        host.expect_lvs_one("snap-b-1", std::slice::from_ref(&row));
        let one = list_snapshots(&host.ctx, by_id("snap-b-1")).await.unwrap();
        assert_eq!(ids(&one), ["snap-b-1"]);
        host.expect_lvs_one("snap-b-1", std::slice::from_ref(&row));
        let other_source = ListSnapshots {
            source_volume_id: "csi-v-1",
            ..by_id("snap-b-1")
        };
        let other_source = list_snapshots(&host.ctx, other_source).await.unwrap();
        assert!(other_source.entries.is_empty());
        let malformed = list_snapshots(&host.ctx, by_id("csi-v-1")).await.unwrap();
        assert!(malformed.entries.is_empty());
        for token in ["garbage!", "csi-v-1"] {
            let err = list_snapshots(&host.ctx, page(0, token)).await.unwrap_err();
            assert_eq!(err.kind(), Kind::Aborted, "{token}");
        }
        refused(
            list_snapshots(&host.ctx, page(-1, "")).await,
            Kind::InvalidArgument,
        );
        host.finish();
    }

    #[tokio::test]
    async fn get_snapshot_found_and_not_found() {
        let host = FakeHost::new();
        host.expect_lvs_one("snap-a-1", &[snap_row("snap-a-1", 8 << 20, "a", "csi-v-1")]);
        let s = get_snapshot(&host.ctx, "snap-a-1").await.unwrap();
        assert_eq!(s.record.name, "a");
        host.expect_lvs_one("snap-a-1", &[]);
        refused(get_snapshot(&host.ctx, "snap-a-1").await, Kind::NotFound);
        refused(get_snapshot(&host.ctx, "csi-v-1").await, Kind::NotFound);
        refused(get_snapshot(&host.ctx, "").await, Kind::InvalidArgument);
        host.finish();
    }
}
