//! The CSI Identity service, shared by both binaries.
//!
//! Invariant: Probe never fails because a dependency is missing; it answers `ready=false` and
//! logs why, so the CO's liveness probe keeps the plugin alive while the host is being fixed.

use crate::command::BoxFuture;
use csi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
    identity_server::Identity,
};
use std::{collections::HashMap, fmt, sync::Arc};
use tonic::{Request, Response, Status};

/// Checks whether a plugin can serve its RPCs now.
pub trait Readiness: Send + Sync + fmt::Debug {
    /// `Ok(())` when ready, else why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Identity service answering for one plugin.
#[derive(Debug, Clone)]
pub struct IdentityService {
    driver_name: String,
    vendor_version: String,
    capabilities: Vec<PluginCapability>,
    readiness: Arc<dyn Readiness>,
}

impl IdentityService {
    /// An identity for `driver_name` at `vendor_version`, advertising `capabilities`.
    pub fn new(
        driver_name: impl Into<String>,
        vendor_version: impl Into<String>,
        capabilities: Vec<PluginCapability>,
        readiness: Arc<dyn Readiness>,
    ) -> Self {
        Self {
            driver_name: driver_name.into(),
            vendor_version: vendor_version.into(),
            capabilities,
            readiness,
        }
    }
}

/// A plugin capability for a service type.
pub fn service_capability(
    kind: csi_proto::v1::plugin_capability::service::Type,
) -> PluginCapability {
    use csi_proto::v1::plugin_capability::{Service, Type};
    PluginCapability {
        r#type: Some(Type::Service(Service {
            r#type: kind as i32,
        })),
    }
}

/// A plugin capability for a volume expansion type.
pub fn expansion_capability(
    kind: csi_proto::v1::plugin_capability::volume_expansion::Type,
) -> PluginCapability {
    use csi_proto::v1::plugin_capability::{Type, VolumeExpansion};
    PluginCapability {
        r#type: Some(Type::VolumeExpansion(VolumeExpansion {
            r#type: kind as i32,
        })),
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: self.vendor_version.clone(),
            manifest: HashMap::new(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: self.capabilities.clone(),
        }))
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        let ready = match self.readiness.check().await {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(%reason, "not ready");
                false
            }
        };
        Ok(Response::new(ProbeResponse { ready: Some(ready) }))
    }
}
