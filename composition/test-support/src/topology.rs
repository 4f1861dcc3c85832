//! The production topology, for tests and for `eventhive chaos`: every service of
//! [`eventhive_system::SERVICES`] as its own process (`eventhive serve <service>`), on free
//! ports, against the real infrastructure — fresh PostgreSQL databases under a prefix of their
//! own, a private RabbitMQ exchange, a private Redis prefix. In one process (`TestApp`) the bus
//! and every call are a few microseconds away; here, as in production, a domain event crosses
//! the broker and another process, which is what races between a synchronous answer and an
//! eventual one need.
//!
//! A [`Layout`] can ask for several replicas of a service: they then run on ports of their own
//! behind HAProxy ([`crate::balancer`]), which listens on the service's port, so every other
//! process reaches the service through the balancer, as in a deployment. Each process is an
//! instance (`ticketing`, `ticketing-2`, ...) that can be killed with SIGKILL and started again.
//!
//! The processes are killed, and the databases, queues, exchange and keys removed, on drop.
//! Only for infrastructure tests: call `infra::run_infra_test()` first.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use eventhive_platform::Settings;

use crate::{balancer::Balancer, clean_up_infra, infra, open_database};

/// How long the whole system may take to become ready (migrations of seven databases).
const READY_PATIENCE: Duration = Duration::from_secs(90);

/// What to run: where the infrastructure is, how many replicas of which service, more settings.
#[derive(Debug, Clone)]
pub struct Layout {
    pub database_url: String,
    pub amqp_url: String,
    /// Replicas per service, for those with more than one.
    pub replicas: BTreeMap<&'static str, usize>,
    /// More `EVENTHIVE_*` settings for every process.
    pub extra: Vec<(String, String)>,
    /// The database and broker servers are thrown away after the run: their databases and
    /// queues are left as they are on drop (only the Redis keys, on a shared server, go).
    pub disposable_servers: bool,
    /// Where the processes' logs go; a temporary directory, removed on drop, when `None`.
    pub log_dir: Option<PathBuf>,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            database_url: infra::database_url(),
            amqp_url: infra::amqp_url(),
            replicas: BTreeMap::new(),
            extra: Vec::new(),
            disposable_servers: false,
            log_dir: None,
        }
    }
}

/// One process of the topology.
struct Instance {
    name: String,
    service: &'static str,
    /// The port it listens on: the service's own, or a replica's behind the balancer.
    port: u16,
    child: Option<Child>,
}

/// The system as separate processes.
pub struct Topology {
    /// `http://127.0.0.1:<port>` of the gateway (of the balancer in front of its replicas).
    pub address: String,
    /// The settings the processes run with, for opening their databases.
    pub settings: Settings,
    binary: PathBuf,
    env: Vec<(String, String)>,
    instances: Vec<Instance>,
    balancer: Option<Balancer>,
    disposable_servers: bool,
    /// Each process's stderr, shown when it does not become ready.
    logs: PathBuf,
    /// The temporary directory of `logs`, when no directory was given.
    _temporary_logs: Option<tempfile::TempDir>,
}

impl Topology {
    /// Starts every service from `binary` (the `eventhive` executable) and waits until each
    /// answers its readiness check. `extra` are more `EVENTHIVE_*` settings for every process.
    pub async fn start(binary: &Path, extra: &[(&str, &str)]) -> Self {
        let extra = extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        Self::start_with(binary, Layout { extra, ..Layout::default() }).await
    }

    /// Starts the topology `layout` describes and waits until every instance is ready.
    pub async fn start_with(binary: &Path, layout: Layout) -> Self {
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let secret_key = eventhive_platform::Secrets::new_key_text().unwrap_or_default();
        let mut env: Vec<(String, String)> = vec![
            ("EVENTHIVE_BIND_HOST".into(), "127.0.0.1".into()),
            ("EVENTHIVE_DATABASE_URL".into(), layout.database_url.clone()),
            ("EVENTHIVE_DATABASE_PREFIX".into(), format!("eh_topo_{run_id}")),
            ("EVENTHIVE_DATABASE_MAX_CONNECTIONS".into(), "4".into()),
            ("EVENTHIVE_AMQP_URL".into(), layout.amqp_url.clone()),
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
            database_url: Some(layout.database_url.clone()),
            database_prefix: format!("eh_topo_{run_id}"),
            database_max_connections: 2,
            amqp_url: Some(layout.amqp_url.clone()),
            amqp_exchange: format!("eh-topo-{run_id}.events"),
            redis_url: Some(infra::redis_url()),
            redis_prefix: format!("eh-topo-{run_id}"),
            secret_key: Some(secret_key.into()),
            ..Settings::default()
        };
        let mut instances = Vec::new();
        let mut balanced = Vec::new();
        for service in eventhive_system::names() {
            let port = free_port();
            env.push((format!("EVENTHIVE_{}_PORT", service.to_uppercase()), port.to_string()));
            settings.set(&format!("{service}_port"), port);
            match layout.replicas.get(service).copied().unwrap_or(1) {
                0 | 1 => instances.push(Instance { name: service.to_owned(), service, port, child: None }),
                replicas => {
                    let ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
                    for (index, port) in ports.iter().enumerate() {
                        let name = if index == 0 { service.to_owned() } else { format!("{service}-{}", index + 1) };
                        instances.push(Instance { name, service, port: *port, child: None });
                    }
                    balanced.push((service, port, ports));
                }
            }
        }
        env.extend(layout.extra.iter().cloned());
        let temporary_logs = match &layout.log_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("log directory {}: {e}", dir.display()));
                None
            }
            None => Some(tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"))),
        };
        let logs = match (&layout.log_dir, &temporary_logs) {
            (Some(dir), _) => dir.clone(),
            (None, Some(temporary)) => temporary.path().to_owned(),
            (None, None) => std::env::temp_dir(),
        };
        let balancer = (!balanced.is_empty()).then(|| Balancer::start(&logs, &balanced));
        let mut topology = Self {
            address: format!("http://127.0.0.1:{}", settings.port("gateway").unwrap_or_default()),
            settings,
            binary: binary.to_owned(),
            env,
            instances,
            balancer,
            disposable_servers: layout.disposable_servers,
            logs,
            _temporary_logs: temporary_logs,
        };
        let names: Vec<String> = topology.instances.iter().map(|instance| instance.name.clone()).collect();
        for name in &names {
            topology.start_instance(name, &[]);
        }
        if let Err(down) = eventhive_system::readiness::wait(&topology.settings, READY_PATIENCE).await {
            let logs: Vec<String> = names.iter().map(|name| topology.tail_of_log(name)).collect();
            panic!("not ready after {READY_PATIENCE:?}: {down:?}\n{}", logs.join("\n"));
        }
        for name in &names {
            if !topology.wait_ready(name, READY_PATIENCE).await {
                panic!("{name} not ready after {READY_PATIENCE:?}\n{}", topology.tail_of_log(name));
            }
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

    /// Every instance's name (`gateway`, `gateway-2`, `payments`, ...), in start order.
    pub fn instances(&self) -> Vec<String> {
        self.instances.iter().map(|instance| instance.name.clone()).collect()
    }

    /// `kill -9` of one instance; it stays down until [`Self::start_instance`].
    pub fn kill(&mut self, name: &str) {
        if let Some(child) = self.instance_mut(name).child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.instance_mut(name).child = None;
    }

    /// Starts an instance (again) with every setting of the topology plus `extra`.
    pub fn start_instance(&mut self, name: &str, extra: &[(&str, &str)]) {
        let instance = self.instances.iter().find(|instance| instance.name == name);
        let Some(Instance { service, port, .. }) = instance else { panic!("no instance {name}") };
        let (service, port) = (*service, *port);
        let mut env = self.env.clone();
        env.push((format!("EVENTHIVE_{}_PORT", service.to_uppercase()), port.to_string()));
        env.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        let child = spawn(&self.binary, service, &env, &self.log(name));
        self.instance_mut(name).child = Some(child);
    }

    /// Waits until the instance answers its own readiness check; false after `patience`.
    pub async fn wait_ready(&self, name: &str, patience: Duration) -> bool {
        let Some(instance) = self.instances.iter().find(|instance| instance.name == name) else { return false };
        let mut settings = self.settings.clone();
        settings.set(&format!("{}_port", instance.service), instance.port);
        let deadline = tokio::time::Instant::now() + patience;
        while tokio::time::Instant::now() < deadline {
            if eventhive_system::readiness::is_ready_now(&settings, instance.service).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The last lines an instance wrote, for a report.
    pub fn tail_of_log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.log(name)).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        format!("--- {name} ---\n{}", text.get(start..).unwrap_or_default())
    }

    /// Stops every process (SIGKILL), leaving the databases and queues for checks; drop removes them.
    pub fn kill_all(&mut self) {
        for name in self.instances() {
            self.kill(&name);
        }
    }

    fn instance_mut(&mut self, name: &str) -> &mut Instance {
        match self.instances.iter_mut().find(|instance| instance.name == name) {
            Some(instance) => instance,
            None => panic!("no instance {name}"),
        }
    }

    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }
}

/// A port free now; the child binds it a moment later.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}

fn spawn(binary: &Path, service: &str, env: &[(String, String)], log: &Path) -> Child {
    let mut command = Command::new(binary);
    command.args(["serve", service]).stdin(Stdio::null());
    // The test's own EVENTHIVE_* variables (EVENTHIVE_TEST_INFRA, ...) are not the service's,
    // and a service refuses variables it does not know.
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("EVENTHIVE_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // Appended: a restarted instance's log follows the one before it.
    let stderr: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
    // Logs go to stdout (JSON), start-up failures to stderr: both kept.
    command.stdout(stderr.try_clone().unwrap_or_else(|e| panic!("log file {}: {e}", log.display())));
    command.stderr(stderr);
    command.spawn().unwrap_or_else(|e| panic!("starting `{} serve {service}`: {e}", binary.display()))
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.kill_all();
        drop(self.balancer.take());
        // The queues every process declares on the private exchange (RabbitMQ cannot list them
        // by exchange without its management API).
        let queues = eventhive_system::subscriptions().into_iter().map(|s| s.queue).collect();
        let mut settings = self.settings.clone();
        if self.disposable_servers {
            settings.database_url = None;
            settings.amqp_url = None;
        }
        clean_up_infra(settings, queues);
    }
}
