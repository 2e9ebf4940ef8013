//! Cases that need no storage: every Identity RPC, the capabilities, NodeGetInfo, and each
//! Controller and Node RPC given an id Carve never issued or a missing field. None of them may
//! run a tool: an unknown id is decided from its shape alone.

use super::Table;
use carvectl::Client;
use csi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginInfoRequest, ProbeRequest, plugin_capability,
    plugin_capability::service::Type as Service,
};
use std::path::Path;
use tonic::Code::Ok;

/// Where the node cases point: an existing staging directory and a target path whose parent
/// exists, as kubelet prepares them; the node id and attach limit NodeGetInfo must report.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    /// The node's id (its initiator IQN).
    pub node_id: &'a str,
    /// The max_volumes_per_node NodeGetInfo must report.
    pub max_volumes: i64,
    /// An existing staging directory.
    pub staging: &'a Path,
    /// A target path whose parent exists.
    pub target: &'a Path,
    /// Whether Probe must answer (the in-process tier has no tools for it to run).
    pub probe: bool,
}

/// Runs the stateless cases against `controller` and `node` (they may be one endpoint).
pub async fn stateless(t: &mut Table, controller: &Client, node: &Client, env: &Env<'_>) {
    identity(t, controller, node, env.probe).await;
    super::controller::controller_cases(t, controller, env).await;
    super::node::node_cases(t, node, env).await;
}

async fn identity(t: &mut Table, controller: &Client, node: &Client, probe: bool) {
    for (who, client) in [("controller", controller), ("node", node)] {
        let mut id = client.identity.clone();
        if let Some(info) = t.code(
            &format!("get_plugin_info__{who}"),
            Ok,
            id.get_plugin_info(GetPluginInfoRequest {}).await,
        ) {
            let info = info.into_inner();
            t.check(
                &format!("get_plugin_info__{who}_name_and_version_set"),
                !info.name.is_empty() && !info.vendor_version.is_empty(),
                format!("{info:?}"),
            );
        }
        if probe {
            let ready = t.code(
                &format!("probe__{who}"),
                Ok,
                id.probe(ProbeRequest {}).await,
            );
            t.check(
                &format!("probe__{who}_ready"),
                ready.is_some_and(|r| r.into_inner().ready != Some(false)),
                "the sidecars wait for ready",
            );
        }
    }
    let caps = t.code(
        "get_plugin_capabilities__controller_service",
        Ok,
        controller
            .identity
            .clone()
            .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
            .await,
    );
    let has_controller = caps.is_some_and(|c| {
        c.into_inner().capabilities.iter().any(|c| {
            matches!(&c.r#type, Some(plugin_capability::Type::Service(s))
                if s.r#type == Service::ControllerService as i32)
        })
    });
    t.check(
        "get_plugin_capabilities__controller_service_advertised",
        has_controller,
        "external-provisioner and external-attacher need CONTROLLER_SERVICE",
    );
}
