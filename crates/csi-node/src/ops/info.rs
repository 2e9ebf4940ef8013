//! NodeGetInfo: who this node is, as the controller and the scheduler see it. (NodeGetCapabilities
//! needs nothing of the node: `service` answers it from its list of capabilities.)
//!
//! Invariant: node_id is the initiator IQN (the controller puts it in the target ACL).

use super::NodeCore;
use std::collections::HashMap;

/// What NodeGetInfo reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node id: this node's initiator IQN.
    pub node_id: String,
    /// max_volumes_per_node (0: not reported).
    pub max_volumes: i64,
    /// accessible_topology segments (`None`: none reported).
    pub topology: Option<HashMap<String, String>>,
}

/// NodeGetInfo.
pub fn info(core: &NodeCore) -> NodeInfo {
    NodeInfo {
        node_id: core.node_id.to_string(),
        max_volumes: core.max_volumes.max(0),
        topology: (!core.topology.is_empty()).then(|| core.topology.to_map()),
    }
}
