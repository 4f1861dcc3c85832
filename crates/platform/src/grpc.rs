//! gRPC plumbing shared by every service: serving on a caller-given listener with health and
//! graceful shutdown, dialing other services with deadlines, and carrying the request id.

use std::{convert::Infallible, time::Duration};

use http::{Request as HttpRequest, Response as HttpResponse};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{
    body::Body,
    metadata::MetadataValue,
    server::NamedService,
    transport::{Channel, Endpoint, Server},
};
use tonic_health::server::HealthReporter;
use tower::Service;

/// Header and metadata key of the request id, from the gateway through every gRPC call.
pub const REQUEST_ID: &str = "x-request-id";

/// Dials `url` lazily: the connection is made on first use and re-made after failures, so a
/// service may start before the ones it calls.
pub fn channel(url: &str, deadline: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .timeout(deadline)
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// Like [`channel`], without a per-call deadline: for server streams that last as long as
/// their client.
pub fn streaming_channel(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// A request carrying the caller's request id.
pub fn request<T>(message: T, request_id: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = request_id.and_then(|id| MetadataValue::try_from(id).ok()) {
        request.metadata_mut().insert(REQUEST_ID, value);
    }
    request
}

/// The request id a gRPC request carries, for logs and for the events it causes.
pub fn request_id<T>(request: &tonic::Request<T>) -> Option<String> {
    request.metadata().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Serves `service` with gRPC health on `listener` until `shutdown`, then drains.
/// Health turns NOT_SERVING first, so load balancers stop sending before the listener closes.
pub async fn serve<S>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    health: (
        HealthReporter,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    ),
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: Service<HttpRequest<Body>, Response = HttpResponse<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (reporter, health_service) = health;
    reporter.set_service_status(S::NAME, tonic_health::ServingStatus::Serving).await;
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    // Domain errors (not found, conflict) are answers, not failures; real failures are logged
    // where they happen, with their cause chain.
    let trace = tower_http::trace::TraceLayer::new_for_grpc()
        .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG))
        .make_span_with(move |request: &HttpRequest<Body>| {
            let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("grpc", service = name, method = %request.uri().path(), request_id)
        });
    let stopping = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            reporter.set_service_status(S::NAME, tonic_health::ServingStatus::NotServing).await;
            reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        }
    };
    tracing::info!(service = name, address = %listener.local_addr()?, "gRPC listening");
    Server::builder()
        .layer(trace)
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopping)
        .await?;
    Ok(())
}

/// Whether the service at `channel` reports SERVING, for readiness probes.
pub async fn is_serving(channel: Channel) -> bool {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    matches!(
        client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await,
        Ok(response) if response.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    )
}
