//! The one shape of a CSI service's gRPC methods, written once: [`grpc_service!`](crate::grpc_service).

/// Implements a tonic service trait from one row per RPC:
/// `rpc(Request) -> Response = handler;` for a synchronous handler, `= handler.await;` for an
/// async one.
///
/// Each method takes the message out of its `tonic::Request`, hands it to the service's
/// `handler(&self, request)`, and wraps what that answers in a `tonic::Response`; a handler's
/// error becomes the `Status` its `From` impl gives (for [`crate::Error`], the one gRPC code
/// table). The RPCs' own work (ids on the span, guards, conversions) stays in the handlers.
#[macro_export]
macro_rules! grpc_service {
    (impl $service:ident for $ty:ty {
        $($rpc:ident($req:ty) -> $resp:ty = $handler:ident $(. $await:ident)?;)*
    }) => {
        #[::tonic::async_trait]
        impl $service for $ty {
            $(
                async fn $rpc(
                    &self,
                    request: ::tonic::Request<$req>,
                ) -> ::std::result::Result<::tonic::Response<$resp>, ::tonic::Status> {
                    self.$handler(request.into_inner())$(.$await)?
                        .map(::tonic::Response::new)
                        .map_err(::tonic::Status::from)
                }
            )*
        }
    };
}
