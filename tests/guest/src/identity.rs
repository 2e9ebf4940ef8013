//! The Identity service and NodeGetInfo as a CO asks them, shared by the guest and in-process
//! tiers. Each helper panics if the RPC fails.

use carvectl::Client;
use csi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginInfoRequest, GetPluginInfoResponse, NodeGetInfoRequest,
    NodeGetInfoResponse, ProbeRequest, plugin_capability::Type,
};

/// GetPluginInfo.
pub async fn plugin_info(client: &Client) -> GetPluginInfoResponse {
    client
        .identity
        .clone()
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .expect("GetPluginInfo")
        .into_inner()
}

/// The service types GetPluginCapabilities advertises.
pub async fn services(client: &Client) -> Vec<i32> {
    client
        .identity
        .clone()
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .expect("GetPluginCapabilities")
        .into_inner()
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(Type::Service(s)) => Some(s.r#type),
            _ => None,
        })
        .collect()
}

/// Probe's `ready`.
pub async fn ready(client: &Client) -> Option<bool> {
    client
        .identity
        .clone()
        .probe(ProbeRequest {})
        .await
        .expect("Probe")
        .into_inner()
        .ready
}

/// NodeGetInfo.
pub async fn node_info(client: &Client) -> NodeGetInfoResponse {
    client
        .node
        .clone()
        .node_get_info(NodeGetInfoRequest {})
        .await
        .expect("NodeGetInfo")
        .into_inner()
}
