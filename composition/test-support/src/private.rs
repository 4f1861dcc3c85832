//! PostgreSQL and RabbitMQ servers of one's own, in a temporary directory on free ports, for
//! the fault-injection harness: it stops and restarts them, which it must never do to the
//! machine's shared servers (other people's tests use them). Both are the distribution's
//! binaries; each is stopped and its directory removed on drop, so a harness that fails
//! half-way leaves nothing running.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;

use crate::topology::free_port;

/// How long a server may take to answer after a start (RabbitMQ takes 20-30 s on a busy host).
const START_PATIENCE: Duration = Duration::from_secs(120);

/// A PostgreSQL cluster run by the `postgres` OS user (PostgreSQL refuses to run as root).
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// `initdb` and start, trusting loopback logins as `postgres`.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = postgres_bin()?;
        let dir = tempfile::Builder::new().prefix("eventhive-chaos-pg").tempdir()?;
        let server = Self { port: free_port(), dir, bin };
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(server.dir.path()))?;
        let initdb = server.bin.join("initdb");
        let data = server.data();
        let mut command = as_postgres(&initdb);
        command.args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"]).arg(&data);
        tokio::task::spawn_blocking(move || run(&mut command)).await??;
        server.start_again().await?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Stops at once, as a crash would (`pg_ctl stop -m immediate`): open connections break
    /// and the next start recovers from the write-ahead log.
    pub async fn stop(&self) -> anyhow::Result<()> {
        let mut command = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        tokio::task::spawn_blocking(move || run(&mut command)).await?
    }

    /// Starts (again) and waits until it takes connections.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let mut command = self.pg_ctl(&["start", "-w", "-t", "120", "-o", &options, "-l"]);
        command.arg(log);
        tokio::task::spawn_blocking(move || run(&mut command)).await?
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = as_postgres(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(self.data()).args(args);
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL's binaries are not in /usr/lib/postgresql")?
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context("no PostgreSQL version in /usr/lib/postgresql")
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

/// A RabbitMQ node of its own: its own node name, ports, database and logs, no plugins.
pub struct PrivateRabbit {
    dir: tempfile::TempDir,
    port: u16,
    dist_port: u16,
    child: Option<Child>,
}

impl PrivateRabbit {
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("eventhive-chaos-rabbit").tempdir()?;
        for sub in ["mnesia", "log", "home"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n")?;
        let port = free_port();
        // The machine's /etc/rabbitmq names the shared node's listener; this file replaces it.
        std::fs::write(dir.path().join("rabbitmq.conf"), format!("listeners.tcp.local = 127.0.0.1:{port}\n"))?;
        let mut rabbit = Self { dir, port, dist_port: free_port(), child: None };
        rabbit.start_again().await?;
        Ok(rabbit)
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the node (SIGTERM: an orderly shutdown, as `systemctl stop` does).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            run(Command::new("kill").args(["-TERM", &child.id().to_string()]))?;
            tokio::task::spawn_blocking(move || child.wait()).await??;
        }
        Ok(())
    }

    /// Starts the node (again) on the same data and waits until it takes AMQP connections.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log"))?;
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .current_dir(dir)
            .env("HOME", dir.join("home"))
            .env("RABBITMQ_NODENAME", format!("eventhive-chaos-{}@localhost", self.port))
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            // Not the machine's rabbitmq-env.conf, which names the shared node.
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting rabbitmq-server (scripts/ensure-infra.sh installs it)")?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        loop {
            if let Ok(connection) = amqp_connect(&self.url()).await {
                let _ = connection.close(200, "ready").await;
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                anyhow::bail!("rabbitmq-server exited ({status}); see {}", dir.join("server.log").display());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "RabbitMQ did not start in {START_PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            // An orderly stop takes a few seconds; past that, SIGKILL.
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Messages ready on a broker's queue, by passive declaration (no management API needed); 0
/// when the queue does not exist.
pub async fn queue_messages(url: &str, queue: &str) -> anyhow::Result<u32> {
    let connection = amqp_connect(url).await?;
    let channel = connection.create_channel().await?;
    let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let count = match channel.queue_declare(queue, options, lapin::types::FieldTable::default()).await {
        Ok(declared) => declared.message_count(),
        Err(_) => 0,
    };
    let _ = connection.close(200, "counted").await;
    Ok(count)
}

async fn amqp_connect(url: &str) -> lapin::Result<lapin::Connection> {
    let properties = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    lapin::Connection::connect(url, properties).await
}
