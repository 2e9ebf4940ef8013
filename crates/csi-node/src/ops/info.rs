//! NodeGetInfo and NodeGetCapabilities.
//!
//! Invariant: node_id is the initiator IQN (the controller puts it in the target ACL); every
//! capability advertised is implemented (EXPAND_VOLUME: `expand`, proven in the guest).

use super::NodeCore;
use csi_proto::v1::{
    NodeGetCapabilitiesResponse, NodeGetInfoResponse, NodeServiceCapability, Topology,
    node_service_capability::{Rpc, Type, rpc::Type as RpcType},
};

/// The capabilities this node advertises.
pub const CAPABILITIES: [RpcType; 5] = [
    RpcType::StageUnstageVolume,
    RpcType::GetVolumeStats,
    RpcType::VolumeCondition,
    RpcType::SingleNodeMultiWriter,
    RpcType::ExpandVolume,
];

/// NodeGetCapabilities.
pub fn capabilities() -> NodeGetCapabilitiesResponse {
    NodeGetCapabilitiesResponse {
        capabilities: CAPABILITIES
            .iter()
            .map(|t| NodeServiceCapability {
                r#type: Some(Type::Rpc(Rpc { r#type: *t as i32 })),
            })
            .collect(),
    }
}

/// NodeGetInfo.
pub fn info(core: &NodeCore) -> NodeGetInfoResponse {
    NodeGetInfoResponse {
        node_id: core.node_id.to_string(),
        max_volumes_per_node: core.max_volumes.max(0),
        accessible_topology: (!core.topology.is_empty()).then(|| Topology {
            segments: core.topology.to_map(),
        }),
    }
}
