//! ListVolumes across agents: every agent's volumes, each with the id naming its agent and its
//! topology; pages of any size with tokens that stay valid across agents; a token naming no
//! configured agent is ABORTED.

use super::{MIB, fleet, lv, zone};
use crate::support::Script;
use csi_controller::ops::testing::{FakeHost, VG};
use csi_proto::v1::{ListVolumesRequest, ListVolumesResponse, controller_server::Controller};
use tonic::{Code, Request};

/// The next `ListVolumes` report of `host` holds the volumes `names`.
fn holds(host: &FakeHost, names: &[&str]) {
    let rows: Vec<_> = names.iter().map(|n| Script::new(n).row(&[])).collect();
    host.expect_survey(10 << 30, 4 * MIB, &rows);
}

async fn page(
    f: &super::Fleet,
    max_entries: i32,
    token: &str,
) -> Result<ListVolumesResponse, Code> {
    let req = ListVolumesRequest {
        max_entries,
        starting_token: token.into(),
    };
    f.svc
        .list_volumes(Request::new(req))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.code())
}

fn ids(page: &ListVolumesResponse) -> Vec<String> {
    page.entries
        .iter()
        .map(|e| e.volume.as_ref().unwrap().volume_id.clone())
        .collect()
}

#[tokio::test]
async fn pages_run_across_agents_with_tokens_valid_on_either() {
    let f = fleet(&[("a", "a", true), ("b", "b", false)]).await;
    let mut on_a = vec![lv("p"), lv("q")];
    on_a.sort();
    let mut on_b = vec![format!("b:{VG}:{}", lv("r")), format!("b:{VG}:{}", lv("s"))];
    on_b.sort();

    holds(f.host("a"), &["p", "q"]);
    holds(f.host("b"), &["r", "s"]);
    let all = page(&f, 0, "").await.unwrap();
    assert_eq!(ids(&all), [on_a.clone(), on_b.clone()].concat());
    assert_eq!(all.next_token, "");
    let topology = |i: usize| {
        all.entries[i]
            .volume
            .as_ref()
            .unwrap()
            .accessible_topology
            .clone()
    };
    assert_eq!(
        (topology(0), topology(3)),
        (vec![zone("a")], vec![zone("b")])
    );

    // Three: a's two, then b's first; the token is b's second, by its full id.
    holds(f.host("a"), &["p", "q"]);
    holds(f.host("b"), &["r", "s"]);
    let first = page(&f, 3, "").await.unwrap();
    assert_eq!(ids(&first), [&on_a[..], &on_b[..1]].concat());
    assert_eq!(first.next_token, on_b[1]);
    holds(f.host("b"), &["r", "s"]);
    let rest = page(&f, 3, &first.next_token).await.unwrap();
    assert_eq!(
        (ids(&rest), rest.next_token.as_str()),
        (on_b[1..].to_vec(), "")
    );

    // Two: a's two fill the page, and the token points at b's first.
    holds(f.host("a"), &["p", "q"]);
    holds(f.host("b"), &["r", "s"]);
    let first = page(&f, 2, "").await.unwrap();
    assert_eq!(
        (ids(&first), first.next_token.as_str()),
        (on_a.clone(), on_b[0].as_str())
    );
    holds(f.host("b"), &["r", "s"]);
    let rest = page(&f, 2, &first.next_token).await.unwrap();
    assert_eq!((ids(&rest), rest.next_token.as_str()), (on_b.clone(), ""));

    for bad in [
        format!("zz:{VG}:csi-x-1"),
        "b:othervg:csi-x-1".into(),
        "x:y:z:w".into(),
    ] {
        assert_eq!(page(&f, 2, &bad).await.unwrap_err(), Code::Aborted, "{bad}");
    }
    assert_eq!(page(&f, -1, "").await.unwrap_err(), Code::InvalidArgument);
    f.finish();
}
