//! Whether each service of the list answers its own health check: gRPC health for the gRPC
//! services, the HTTP readiness path for the gateway. `eventhive dev` waits for all of them
//! before it prints where they are; each check asks one service about itself only, so one slow
//! service never makes another look down.

use std::time::Duration;

use eventhive_platform::{Settings, grpc, service::Health};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::SERVICES;

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The services that do not answer ready now.
pub async fn unready(settings: &Settings) -> Vec<&'static str> {
    let mut down = Vec::new();
    for entry in &SERVICES {
        if !tokio::time::timeout(CHECK_TIMEOUT, is_ready(settings, entry.name, entry.health)).await.unwrap_or(false) {
            down.push(entry.name);
        }
    }
    down
}

/// Waits until every service answers ready, at most `patience`; the ones still down are named.
pub async fn wait(settings: &Settings, patience: Duration) -> Result<(), Vec<&'static str>> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let down = unready(settings).await;
        if down.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(down);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the one service `name` answers ready at the port `settings` give it: a replica
/// behind a load balancer is checked with its own port set, not the balancer's.
pub async fn is_ready_now(settings: &Settings, name: &str) -> bool {
    let Ok(entry) = crate::service(name) else { return false };
    tokio::time::timeout(CHECK_TIMEOUT, is_ready(settings, entry.name, entry.health)).await.unwrap_or(false)
}

async fn is_ready(settings: &Settings, name: &str, health: Health) -> bool {
    let Ok(port) = settings.port(name) else { return false };
    match health {
        Health::Grpc => {
            let Ok(endpoint) = settings.endpoint(name) else { return false };
            match grpc::health_channel(&endpoint, CHECK_TIMEOUT) {
                Ok(channel) => grpc::is_serving(channel).await,
                Err(_) => false,
            }
        }
        Health::Http { path } => http_ok(&settings.bind_host, port, path).await,
    }
}

/// A bare HTTP/1.0 GET: readiness needs a status line, not an HTTP client.
async fn http_ok(host: &str, port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect((host, port)).await else { return false };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}
