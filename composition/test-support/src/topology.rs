//! The production topology, for tests: every service of [`eventhive_system::SERVICES`] as its
//! own process (`eventhive serve <service>`), on free ports, against the real infrastructure —
//! fresh PostgreSQL databases under a prefix of their own, a private RabbitMQ exchange, a
//! private Redis prefix. In one process (`TestApp`) the bus and every call are a few
//! microseconds away; here, as in production, a domain event crosses the broker and another
//! process, which is what races between a synchronous answer and an eventual one need.
//!
//! The processes are killed, and the databases, queues, exchange and keys removed, on drop.
//! Only for infrastructure tests: call `infra::run_infra_test()` first.

use std::{
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use eventhive_platform::Settings;

use crate::{clean_up_infra, infra, open_database};

/// How long the whole system may take to become ready (migrations of seven databases).
const READY_PATIENCE: Duration = Duration::from_secs(90);

/// The system as separate processes.
pub struct Topology {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub address: String,
    /// The settings the processes run with, for opening their databases.
    pub settings: Settings,
    children: Vec<(&'static str, Child)>,
    /// Each process's stderr, shown when it does not become ready.
    logs: tempfile::TempDir,
}

impl Topology {
    /// Starts every service from `binary` (the `eventhive` executable) and waits until each
    /// answers its readiness check. `extra` are more `EVENTHIVE_*` settings for every process.
    pub async fn start(binary: &Path, extra: &[(&str, &str)]) -> Self {
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let secret_key = eventhive_platform::Secrets::new_key_text().unwrap_or_default();
        let mut env: Vec<(String, String)> = vec![
            ("EVENTHIVE_BIND_HOST".into(), "127.0.0.1".into()),
            ("EVENTHIVE_DATABASE_URL".into(), infra::database_url()),
            ("EVENTHIVE_DATABASE_PREFIX".into(), format!("eh_topo_{run_id}")),
            ("EVENTHIVE_DATABASE_MAX_CONNECTIONS".into(), "4".into()),
            ("EVENTHIVE_AMQP_URL".into(), infra::amqp_url()),
            ("EVENTHIVE_AMQP_EXCHANGE".into(), format!("eh-topo-{run_id}.events")),
            ("EVENTHIVE_REDIS_URL".into(), infra::redis_url()),
            ("EVENTHIVE_REDIS_PREFIX".into(), format!("eh-topo-{run_id}")),
            // Seven processes on one host: nobody scrapes them.
            ("EVENTHIVE_METRICS_ENABLED".into(), "false".into()),
            ("EVENTHIVE_OUTBOX_POLL_MS".into(), "100".into()),
            // Fast hashing and no rate limits, as in TestApp.
            ("EVENTHIVE_PASSWORD_HASH_MEMORY_KIB".into(), "1024".into()),
            ("EVENTHIVE_PASSWORD_HASH_ITERATIONS".into(), "1".into()),
            ("EVENTHIVE_RATE_LIMIT_IP_PER_SEC".into(), "0".into()),
            ("EVENTHIVE_RATE_LIMIT_USER_PER_SEC".into(), "0".into()),
            ("EVENTHIVE_SECRET_KEY".into(), secret_key.clone()),
        ];
        let mut settings = Settings {
            bind_host: "127.0.0.1".into(),
            database_url: Some(infra::database_url()),
            database_prefix: format!("eh_topo_{run_id}"),
            database_max_connections: 2,
            amqp_url: Some(infra::amqp_url()),
            amqp_exchange: format!("eh-topo-{run_id}.events"),
            redis_url: Some(infra::redis_url()),
            redis_prefix: format!("eh-topo-{run_id}"),
            secret_key: Some(secret_key.into()),
            ..Settings::default()
        };
        for name in eventhive_system::names() {
            let port = free_port();
            env.push((format!("EVENTHIVE_{}_PORT", name.to_uppercase()), port.to_string()));
            settings.set(&format!("{name}_port"), port);
        }
        env.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let mut topology = Self {
            address: format!("http://127.0.0.1:{}", settings.port("gateway").unwrap_or_default()),
            settings,
            children: Vec::new(),
            logs,
        };
        for name in eventhive_system::names() {
            let child = spawn(binary, name, &env, &topology.log(name));
            topology.children.push((name, child));
        }
        if let Err(down) = eventhive_system::readiness::wait(&topology.settings, READY_PATIENCE).await {
            let logs: Vec<String> = down.iter().map(|name| topology.tail_of_log(name)).collect();
            panic!("not ready after {READY_PATIENCE:?}: {down:?}\n{}", logs.join("\n"));
        }
        topology
    }

    /// Opens a service's database, for checks no API exposes.
    pub async fn database(&self, service: &str) -> eventhive_platform::Database {
        open_database(&self.settings, service).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    fn log(&self, service: &str) -> PathBuf {
        self.logs.path().join(format!("{service}.log"))
    }

    fn tail_of_log(&self, service: &str) -> String {
        let text = std::fs::read_to_string(self.log(service)).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        format!("--- {service} ---\n{}", text.get(start..).unwrap_or_default())
    }
}

/// A port free now; the child binds it a moment later.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}

fn spawn(binary: &Path, service: &str, env: &[(String, String)], log: &Path) -> Child {
    let mut command = Command::new(binary);
    command.args(["serve", service]).stdin(Stdio::null()).stdout(Stdio::null());
    // The test's own EVENTHIVE_* variables (EVENTHIVE_TEST_INFRA, ...) are not the service's,
    // and a service refuses variables it does not know.
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("EVENTHIVE_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let stderr = File::create(log).unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
    command.stderr(stderr);
    command.spawn().unwrap_or_else(|e| panic!("starting `{} serve {service}`: {e}", binary.display()))
}

impl Drop for Topology {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The queues every process declares on the private exchange (RabbitMQ cannot list them
        // by exchange without its management API).
        let queues = eventhive_system::subscriptions().into_iter().map(|s| s.queue).collect();
        clean_up_infra(self.settings.clone(), queues);
    }
}
