//! HAProxy in front of a service's replicas, as a deployment puts one: the service's port is
//! the balancer's, each replica listens on a port of its own. The gateway is balanced per HTTP
//! request and health-checked on its readiness path; a gRPC service per TCP connection (tonic
//! keeps one HTTP/2 connection and dials again when it breaks, which lands on a live replica),
//! health-checked by connecting. A replica that stops answering leaves the rotation within a
//! second; `retries` with `redispatch` send a refused connection to the other replica.
//!
//! HAProxy is Debian's (`scripts/ensure-infra.sh` installs it); it runs in the foreground and
//! is killed on drop.

use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
};

use eventhive_platform::service::Health;

/// A running HAProxy.
pub struct Balancer {
    child: Child,
}

impl Balancer {
    /// Balances each `(service, port, replica ports)`; its config and log go in `dir`.
    pub fn start(dir: &Path, services: &[(&'static str, u16, Vec<u16>)]) -> Self {
        let mut config = String::from(
            "global\n  maxconn 4096\n\ndefaults\n  timeout connect 1s\n  timeout client 120s\n  \
             timeout server 120s\n  retries 3\n  option redispatch\n",
        );
        for (service, port, replicas) in services {
            let health = eventhive_system::service(service).map(|entry| entry.health).unwrap_or(Health::Grpc);
            let (mode, check) = match health {
                Health::Http { path } => ("http", format!("  option httpchk GET {path}\n")),
                Health::Grpc => ("tcp", String::new()),
            };
            let _ = write!(
                config,
                "\nlisten {service}\n  bind 127.0.0.1:{port}\n  mode {mode}\n  balance roundrobin\n{check}"
            );
            for (index, replica) in replicas.iter().enumerate() {
                let _ = writeln!(config, "  server {service}{index} 127.0.0.1:{replica} check inter 300 fall 2 rise 1");
            }
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap_or_else(|e| panic!("haproxy log: {e}"));
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting haproxy (scripts/ensure-infra.sh installs it): {e}"));
        Self { child }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
