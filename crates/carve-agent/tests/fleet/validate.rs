//! ValidateVolumeCapabilities through an agent: the agent reports whether the LV is thin, and
//! the controller confirms the `thin` parameter exactly as the local host does (absent: linear).

use super::{MIB, ext4, fleet};
use csi_controller::ops::testing::{VG, carve_tags, lv_row, pool_row};
use csi_proto::v1::{ValidateVolumeCapabilitiesRequest, controller_server::Controller};
use std::collections::HashMap;
use tonic::Request;

/// Whether the controller confirms `ext4` on `id` with the parameter `thin` (None: absent).
async fn confirmed(f: &super::Fleet, id: &str, thin: Option<&str>) -> bool {
    let parameters = thin
        .map(|t| HashMap::from([("thin".to_string(), t.to_string())]))
        .unwrap_or_default();
    let req = ValidateVolumeCapabilitiesRequest {
        volume_id: id.into(),
        volume_capabilities: vec![ext4()],
        parameters,
        ..Default::default()
    };
    let answer = f.svc.validate_volume_capabilities(Request::new(req)).await;
    answer.unwrap().into_inner().confirmed.is_some()
}

#[tokio::test]
async fn thin_is_confirmed_as_the_agent_reports_the_lv() {
    let f = fleet(&[("a", "a", false)]).await;
    let thin = lv_row("csi-thin-1", 64 * MIB, Some("pool"), &carve_tags("thin-1"));
    let linear = lv_row("csi-linear-1", 64 * MIB, None, &carve_tags("linear-1"));
    for (row, thin_param, want) in [
        (&thin, Some("true"), true),
        (&thin, Some("false"), false),
        (&thin, None, false),
        (&linear, Some("false"), true),
        (&linear, None, true),
        (&linear, Some("true"), false),
    ] {
        f.host("a").expect_lookup(row);
        if row.pool.is_some() {
            f.host("a").expect_pool(&pool_row(1 << 30)); // for its condition
        }
        let id = format!("a:{VG}:{}", row.name);
        assert_eq!(
            confirmed(&f, &id, thin_param).await,
            want,
            "{} with thin={thin_param:?}",
            row.name
        );
    }
}
