//! Graceful shutdown: one function waits for SIGINT or SIGTERM; every task of a process watches
//! one [`CancellationToken`], and listeners get a bounded grace period to drain.

use std::{future::Future, time::Duration};

pub use tokio_util::sync::CancellationToken;

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// A token that is cancelled on SIGINT/SIGTERM.
pub fn token_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        signal().await;
        trigger.cancel();
    });
    token
}

/// Runs `work` to completion, but once `shutdown` fires gives it at most `grace` more.
pub async fn drain<F: Future<Output = anyhow::Result<()>>>(
    name: &str,
    work: F,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => result,
        () = shutdown.cancelled() => {
            match tokio::time::timeout(grace, work).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(service = name, ?grace, "did not drain within the grace period; stopping anyway");
                    Ok(())
                }
            }
        }
    }
}
