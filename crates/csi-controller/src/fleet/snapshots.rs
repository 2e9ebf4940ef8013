//! CreateSnapshot across agents: a snapshot is cut on its source volume's agent (the source id
//! names it), and its name stays unique across agents (spec.md, CreateSnapshot: a name already
//! used for a snapshot of another source is ALREADY_EXISTS).
//!
//! Invariants: the other agents are asked for the snapshot LV the name derives to
//! ([`LvName::for_snapshot`], the same on every host) before the source's agent cuts it; one
//! holding it makes the call ALREADY_EXISTS (its source is on another host, so it is another
//! source); one that cannot answer is only logged: a retry of this request can only have reached
//! the source's agent, which answers it itself (the snapshot, or ALREADY_EXISTS).

use super::{Agent, create::each};
use crate::{
    agent::{Made, RemoteSnapshot},
    ops::snapshot::{create::CreateSnapshot, list::ListSnapshots},
};
use csi_common::{Error, Result, ids::LvName};
use std::sync::Arc;

/// CreateSnapshot of `req` (its `source_volume_id` the source's local id) on `source`, the
/// source volume's agent, among `agents`.
pub async fn create_snapshot(
    agents: &[Arc<Agent>],
    source: &Arc<Agent>,
    req: CreateSnapshot<'_>,
) -> Result<Made<RemoteSnapshot>> {
    crate::ops::request::check_name(req.name)?;
    let lv = LvName::for_snapshot(req.name).to_string();
    let others: Vec<_> = agents
        .iter()
        .filter(|a| !Arc::ptr_eq(a, source))
        .cloned()
        .collect();
    let answers = each(&others, |agent| {
        let lv = lv.clone();
        async move {
            let op = ListSnapshots {
                snapshot_id: &lv,
                ..Default::default()
            };
            agent
                .client
                .list_snapshots(op)
                .await
                .map(|p| !p.entries.is_empty())
        }
    })
    .await;
    for (agent, answer) in answers {
        match answer {
            Ok(true) => {
                return Err(Error::already_exists(format!(
                    "snapshot {:?} already exists on storage host {}, of another source volume",
                    req.name,
                    agent.name()
                )));
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(agent = agent.name(), error = %e, "storage host did not answer whether it holds the snapshot name");
            }
        }
    }
    source.client.create_snapshot(req).await
}
