//! The reading RPCs of the Controller service (ControllerGetVolume, ValidateVolumeCapabilities,
//! ListVolumes, GetCapacity): thin translation to `ops` on the local host, and to
//! [`crate::fleet`] across agents; kept apart from [`super`] (`service.rs`).
//!
//! Invariants: as in `service.rs`: ids on the RPC span first, `Unavailable` for a volume
//! startup reconciliation has not restored yet (ListVolumes: until it completes), then the
//! backend the id names (`NotFound`: none); a listing or a capacity across agents fails whole
//! when one agent cannot answer ([`crate::fleet::listing`], [`crate::fleet::create`]).

use super::{ControllerService, csi_status, csi_volume};
use crate::{
    fleet::{self, Backend, Backends, remote},
    ops::{self, validate::Validation},
};
use csi_common::Result;
use csi_proto::v1::{
    ControllerGetVolumeRequest, ControllerGetVolumeResponse, GetCapacityRequest,
    GetCapacityResponse, ListVolumesRequest, ListVolumesResponse,
    ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse,
    controller_get_volume_response, list_volumes_response, validate_volume_capabilities_response,
};

impl ControllerService {
    pub(super) async fn get(
        &self,
        req: ControllerGetVolumeRequest,
    ) -> Result<ControllerGetVolumeResponse> {
        let target = self.volume_target(&req.volume_id, None, "volume_id", "volume")?;
        let (volume, published_node_ids, condition) = match target.backend {
            Backend::Local(ctx) => {
                let s = ops::list_volumes::get_volume(&ctx, &target.local).await?;
                let (published, condition) = csi_status(&s);
                (csi_volume(&ctx, &s.volume), published, condition)
            }
            Backend::Agent(agent) => {
                let s = agent.client.get_volume(&target.local).await?;
                remote::status(&agent, &s)
            }
        };
        Ok(ControllerGetVolumeResponse {
            volume: Some(volume),
            status: Some(controller_get_volume_response::VolumeStatus {
                published_node_ids,
                volume_condition: Some(condition),
            }),
        })
    }

    pub(super) async fn validate(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse> {
        let target = self.volume_target(&req.volume_id, None, "volume_id", "volume")?;
        let (caps, params) = (&req.volume_capabilities, &req.parameters);
        let answer = match target.backend {
            Backend::Local(ctx) => {
                ops::validate::validate(&ctx, &target.local, caps, params).await?
            }
            Backend::Agent(agent) => remote::validate(&agent, &target.local, caps, params).await?,
        };
        Ok(match answer {
            Validation::Confirmed => ValidateVolumeCapabilitiesResponse {
                confirmed: Some(validate_volume_capabilities_response::Confirmed {
                    volume_context: req.volume_context,
                    volume_capabilities: req.volume_capabilities,
                    parameters: req.parameters,
                    mutable_parameters: req.mutable_parameters,
                }),
                message: String::new(),
            },
            Validation::Unconfirmed(message) => ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message,
            },
        })
    }

    pub(super) async fn list(&self, req: ListVolumesRequest) -> Result<ListVolumesResponse> {
        let ctx = match &self.backends {
            Backends::Local(ctx) => ctx,
            Backends::Agents(_) => return fleet::listing::list_volumes(&self.backends, &req).await,
        };
        // Published nodes come from the ACLs, which are not all back yet.
        self.restoration.check_all()?;
        let page =
            ops::list_volumes::list_volumes(ctx, req.max_entries, &req.starting_token).await?;
        let entries = page
            .entries
            .iter()
            .map(|s| {
                let (published_node_ids, condition) = csi_status(s);
                list_volumes_response::Entry {
                    volume: Some(csi_volume(ctx, &s.volume)),
                    status: Some(list_volumes_response::VolumeStatus {
                        published_node_ids,
                        volume_condition: Some(condition),
                    }),
                }
            })
            .collect();
        Ok(ListVolumesResponse {
            entries,
            next_token: page.next_token,
        })
    }

    pub(super) async fn capacity(&self, req: GetCapacityRequest) -> Result<GetCapacityResponse> {
        let ctx = match &self.backends {
            Backends::Local(ctx) => ctx,
            Backends::Agents(_) => return fleet::create::get_capacity(&self.backends, &req).await,
        };
        let cap = ops::get_capacity::get_capacity(
            ctx,
            &req.volume_capabilities,
            &req.parameters,
            req.accessible_topology.as_ref().map(|t| &t.segments),
        )
        .await?;
        Ok(GetCapacityResponse {
            available_capacity: i64::try_from(cap.available).unwrap_or(i64::MAX),
            maximum_volume_size: None,
            minimum_volume_size: Some(i64::try_from(cap.minimum_volume_size).unwrap_or(i64::MAX)),
        })
    }
}
