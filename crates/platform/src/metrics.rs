//! Prometheus metrics. Code records with the `metrics` macros (`metrics::counter!`, ...);
//! every process renders them at `GET /metrics` on its own metrics port, never on the public
//! one. One recorder serves a whole process, so in dev mode one listener covers all services.

use std::sync::OnceLock;

use anyhow::Context;
use axum::{Router, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once); `None` if another recorder was installed first.
pub fn recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                None
            }
        })
        .clone()
}

/// Binds the metrics listener if one is configured. Bind before serving, so that a taken port
/// stops the process at start-up with a clear message.
pub async fn bind(settings: &Settings) -> anyhow::Result<Option<TcpListener>> {
    let Some(port) = settings.metrics_port.filter(|_| settings.metrics_enabled) else { return Ok(None) };
    let address = format!("{}:{port}", settings.bind_host);
    let listener = TcpListener::bind(&address)
        .await
        .with_context(|| format!("the metrics listener cannot bind {address} (EVENTHIVE_METRICS_PORT)"))?;
    Ok(Some(listener))
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(handle) = recorder() else { return Ok(()) };
    let app = Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}
