//! gRPC plumbing shared by every service: serving on a caller-given listener with health,
//! request metrics and graceful shutdown, dialing other services with deadlines, and carrying
//! the request id. Services authenticate to each other: every call carries a short-lived
//! token made with the deployment's secret key (`secrets`), and a server answers
//! `UNAUTHENTICATED` to a call without a valid one, so a service port reached from outside
//! (the `Actor` in a request is trusted) gives nothing away. Only health checks are open.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http::{Request as HttpRequest, Response as HttpResponse};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    body::Body,
    metadata::MetadataValue,
    server::NamedService,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{self, Endpoint, Server, server::TcpIncoming},
};
use tonic_health::server::HealthReporter;
use tower::Service;

use crate::{
    secrets::{SERVICE_TOKEN, Secrets},
    telemetry,
};

/// Header and metadata key of the request id, from the gateway through every gRPC call.
pub const REQUEST_ID: &str = "x-request-id";

/// A channel to another service of the deployment: every call presents the service token,
/// and a read that could not reach its server is tried again ([`RetryReads`]).
pub type Channel = RetryReads<InterceptedService<transport::Channel, ServiceToken>>;

/// Adds the service token to every call made through a [`Channel`].
#[derive(Clone)]
pub struct ServiceToken(Secrets);

impl Interceptor for ServiceToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let token = MetadataValue::try_from(self.0.service_token())
            .map_err(|_| tonic::Status::internal("service token is not ASCII"))?;
        request.metadata_mut().insert(SERVICE_TOKEN, token);
        Ok(request)
    }
}

/// Dials `url` lazily: the connection is made on first use and re-made after failures, so a
/// service may start before the ones it calls.
pub fn channel(url: &str, deadline: Duration, secrets: &Secrets) -> anyhow::Result<Channel> {
    Ok(authenticated(health_channel(url, deadline)?, secrets))
}

/// `channel`, presenting the service token on every call.
pub fn authenticated(channel: transport::Channel, secrets: &Secrets) -> Channel {
    RetryReads(InterceptedService::new(channel, ServiceToken(secrets.clone())))
}

/// Like [`channel`], without a per-call deadline: for server streams that last as long as
/// their client.
pub fn streaming_channel(url: &str, secrets: &Secrets) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(authenticated(endpoint.connect_lazy(), secrets))
}

/// A channel without the service token, for the health checks readiness makes (open to
/// anyone, as load balancers and Kubernetes probes call them).
pub fn health_channel(url: &str, deadline: Duration) -> anyhow::Result<transport::Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .timeout(deadline)
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// A request carrying the caller's request id and, when traces are exported, the current
/// span's `traceparent`, so that the callee's span joins the caller's trace.
pub fn request<T>(message: T, request_id: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = request_id.and_then(|id| MetadataValue::try_from(id).ok()) {
        request.metadata_mut().insert(REQUEST_ID, value);
    }
    if let Some(value) = telemetry::current_traceparent().and_then(|tp| MetadataValue::try_from(tp).ok()) {
        request.metadata_mut().insert(telemetry::TRACEPARENT, value);
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
    secrets: &Secrets,
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
            let span = tracing::info_span!("grpc", service = name, method = %request.uri().path(), request_id);
            let traceparent = request.headers().get(telemetry::TRACEPARENT).and_then(|v| v.to_str().ok());
            telemetry::continue_trace(&span, traceparent);
            span
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
        .layer(tower::layer::layer_fn(RecordMetrics))
        .layer(tower::layer::layer_fn({
            let secrets = secrets.clone();
            move |inner| RequireServiceToken { secrets: secrets.clone(), inner }
        }))
        .add_service(health_service)
        .add_service(service)
        // Nagle off on every accepted connection: a response's HEADERS, DATA and trailers leave
        // as separate writes, and with Nagle a later one waits for the caller's delayed ACK —
        // 40 ms added to a call that took one.
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stopping)
        .await?;
    Ok(())
}

/// Refuses a call without a valid service token (`UNAUTHENTICATED`), except health checks.
#[derive(Clone)]
pub struct RequireServiceToken<S> {
    secrets: Secrets,
    inner: S,
}

impl<S> Service<HttpRequest<Body>> for RequireServiceToken<S>
where
    S: Service<HttpRequest<Body>, Response = HttpResponse<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<Body>) -> Self::Future {
        let open = request.uri().path().starts_with("/grpc.health.v1.Health/");
        let presented = request.headers().get(SERVICE_TOKEN).and_then(|v| v.to_str().ok());
        if open || presented.is_some_and(|token| self.secrets.verify_service_token(token)) {
            return Box::pin(self.inner.call(request));
        }
        tracing::warn!(method = %request.uri().path(), "gRPC call without a valid service token refused");
        let refusal = tonic::Status::unauthenticated("calls between services need this deployment's service token");
        Box::pin(async move { Ok(refusal.into_http()) })
    }
}

/// Tries a read again when the call failed in the transport — the connection refused or cut,
/// as when the replica it reached was killed — twice at most, 50 ms and 100 ms later. Only
/// reads (`Get…`, `List…`, `Search…`, `Find…`): a read asked twice answers the same, while a
/// write cut mid-call may have been applied, so it is left to its caller and its idempotency
/// key. An answer from the server, even an error, is never retried here.
#[derive(Debug, Clone)]
pub struct RetryReads<S>(pub S);

/// Attempts after the first for a read.
const READ_RETRIES: u32 = 2;

/// Whether the method a request path names only reads.
fn is_read(path: &str) -> bool {
    let (_, method) = split_path(path);
    ["Get", "List", "Search", "Find"].iter().any(|verb| method.starts_with(verb))
}

impl<S, B> Service<HttpRequest<Body>> for RetryReads<S>
where
    S: Service<HttpRequest<Body>, Response = HttpResponse<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError> + Send,
    B: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<Body>) -> Self::Future {
        if !is_read(request.uri().path()) {
            return Box::pin(self.0.call(request));
        }
        // The service polled ready is the one to call first; the clone serves the retries.
        let clone = self.0.clone();
        let mut ready = std::mem::replace(&mut self.0, clone);
        let mut retries = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // A unary request is one small message: kept, so it can be sent again.
            let body = match http_body_util::BodyExt::collect(body).await {
                Ok(collected) => collected.to_bytes(),
                // Encoding into memory does not fail; were it to, the server refuses the empty
                // call with a status of its own rather than this one being lost.
                Err(_) => return ready.call(HttpRequest::from_parts(parts, Body::empty())).await,
            };
            // Every attempt is the request as it came, extensions included, with the kept body.
            let again = |parts: &http::request::Parts| {
                HttpRequest::from_parts(parts.clone(), Body::new(http_body_util::Full::new(body.clone())))
            };
            let mut attempt = 0;
            loop {
                let answer = if attempt == 0 {
                    ready.call(again(&parts)).await
                } else {
                    match tower::ServiceExt::ready(&mut retries).await {
                        Ok(service) => service.call(again(&parts)).await,
                        Err(error) => Err(error),
                    }
                };
                if answer.is_ok() || attempt == READ_RETRIES {
                    return answer;
                }
                // Not kept across the pause: the failure is replaced by the next attempt's.
                drop(answer);
                attempt += 1;
                tracing::debug!(method = %parts.uri.path(), attempt, "read retried after a transport failure");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
        })
    }
}

/// Whether the service at `channel` reports SERVING, for readiness probes.
pub async fn is_serving(channel: transport::Channel) -> bool {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    matches!(
        client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await,
        Ok(response) if response.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    )
}

/// Counts the calls a gRPC server answers, by gRPC service, method and status code
/// (`eventhive_grpc_server_requests_total`), and times them to their response headers
/// (`eventhive_grpc_server_request_duration_seconds`). For a unary call that is the handler's
/// whole work; a server stream is timed and coded by its start (its final status travels in
/// trailers, after the call is counted).
#[derive(Debug, Clone)]
pub struct RecordMetrics<S>(pub S);

impl<S, B> Service<HttpRequest<Body>> for RecordMetrics<S>
where
    S: Service<HttpRequest<Body>, Response = HttpResponse<B>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<Body>) -> Self::Future {
        // `/eventhive.ticketing.v1.Ticketing/PayOrder`: the path names both, and nothing else.
        let (service, method) = split_path(request.uri().path());
        let started = Instant::now();
        let response = self.0.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                // A call that failed answers headers-only, with its status among them; a call
                // that succeeded puts `grpc-status: 0` in its trailers.
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unknown,
            };
            metrics::counter!(
                "eventhive_grpc_server_requests_total",
                "service" => service.clone(),
                "method" => method.clone(),
                "code" => format!("{code:?}"),
            )
            .increment(1);
            metrics::histogram!("eventhive_grpc_server_request_duration_seconds", "service" => service, "method" => method)
                .record(started.elapsed().as_secs_f64());
            response
        })
    }
}

/// The gRPC service and method a request path names; an unexpected path is counted as such
/// rather than as a new label value per path.
fn split_path(path: &str) -> (String, String) {
    match path.trim_start_matches('/').split_once('/') {
        Some((service, method)) if !service.is_empty() && !method.is_empty() && !method.contains('/') => {
            (service.to_owned(), method.to_owned())
        }
        _ => ("unknown".to_owned(), "unknown".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[test]
    fn a_path_names_service_and_method() {
        assert_eq!(
            split_path("/eventhive.ticketing.v1.Ticketing/PayOrder"),
            ("eventhive.ticketing.v1.Ticketing".to_owned(), "PayOrder".to_owned())
        );
        assert_eq!(split_path("/nonsense"), ("unknown".to_owned(), "unknown".to_owned()));
        assert_eq!(split_path("/a/b/c"), ("unknown".to_owned(), "unknown".to_owned()));
    }

    /// A server reached through a transport that fails the first `failures` calls; counts calls.
    fn flaky(
        failures: usize,
    ) -> (
        Arc<AtomicUsize>,
        impl Service<HttpRequest<Body>, Response = HttpResponse<Body>, Error = tower::BoxError, Future: Send>
        + Clone
        + Send
        + 'static,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let service = tower::service_fn(move |request: HttpRequest<Body>| {
            let call = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = http_body_util::BodyExt::collect(request.into_body()).await?.to_bytes();
                if call < failures {
                    return Err::<HttpResponse<Body>, tower::BoxError>("connection refused".into());
                }
                // The server echoes what it was sent: a retry must send the same message again.
                Ok(HttpResponse::new(Body::new(http_body_util::Full::new(body))))
            }
        });
        (calls, service)
    }

    fn call_to(path: &str) -> HttpRequest<Body> {
        let mut request =
            HttpRequest::new(Body::new(http_body_util::Full::new(tonic::codegen::Bytes::from_static(b"message"))));
        *request.uri_mut() = path.parse().unwrap();
        request
    }

    #[tokio::test]
    async fn a_read_is_sent_again_after_a_transport_failure_with_the_same_message() {
        let (calls, server) = flaky(2);
        let answer = RetryReads(server).call(call_to("/eventhive.catalog.v1.Catalog/GetEvent")).await.unwrap();
        let echoed = http_body_util::BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
        assert_eq!(&echoed[..], b"message");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_read_gives_up_after_its_retries_and_a_write_is_sent_once() {
        let (calls, server) = flaky(usize::MAX);
        assert!(RetryReads(server).call(call_to("/eventhive.catalog.v1.Catalog/GetEvent")).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1 + READ_RETRIES as usize);
        let (calls, server) = flaky(1);
        assert!(RetryReads(server).call(call_to("/eventhive.ticketing.v1.Ticketing/PayOrder")).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn only_reads_are_retried() {
        assert!(is_read("/eventhive.catalog.v1.Catalog/GetEvent"));
        assert!(is_read("/eventhive.catalog.v1.Catalog/SearchEvents"));
        assert!(is_read("/eventhive.identity.v1.Identity/FindUserByEmail"));
        assert!(!is_read("/eventhive.ticketing.v1.Ticketing/PayOrder"));
        assert!(!is_read("/eventhive.payments.v1.Payments/Charge"));
        assert!(!is_read("/eventhive.ticketing.v1.Ticketing/RequireAdmission"));
    }
}
