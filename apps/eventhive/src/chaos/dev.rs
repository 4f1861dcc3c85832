//! `eventhive dev` on the embedded backend (SQLite files, the in-process bus kept in its own
//! database) killed with SIGKILL mid-sale and started again on the same data directory: the
//! outbox, the bus and the mail queue must resume where they stopped, so that no paid order
//! goes without its confirmation email.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use eventhive_platform::Settings;
use eventhive_test_support::topology::free_port;

use super::{Chaos, Outcome, race_with, truth, when_paid};
use crate::bench;

/// How long `eventhive dev` may take to answer ready (migrations of every database).
const READY_PATIENCE: Duration = Duration::from_secs(90);

/// The `eventhive dev` process, killed on drop.
struct Dev {
    binary: std::path::PathBuf,
    env: Vec<(String, String)>,
    data: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Dev {
    fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.data.path().join("dev.log"))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("dev")
            .arg("--no-seed")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(self.data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // Embedded: none of this process's URLs, nor any other EVENTHIVE_* of the caller's.
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("EVENTHIVE_")) {
            command.env_remove(key);
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.child = Some(command.spawn()?);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_ready(&self, api: &bench::Api) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_PATIENCE;
        while Instant::now() < deadline {
            if matches!(api.get("/readyz", None).await, Ok((200, _))) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let log = std::fs::read_to_string(self.data.path().join("dev.log")).unwrap_or_default();
        anyhow::bail!("eventhive dev not ready after {READY_PATIENCE:?}:\n{}", &log[log.len().saturating_sub(3000)..])
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn run(binary: &std::path::Path, options: &Chaos) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let port = free_port();
    // Ports of its own for every service: other people's `eventhive dev` may hold the defaults.
    let mut env: Vec<(String, String)> = eventhive_system::names()
        .filter(|name| *name != "gateway")
        .map(|name| (format!("EVENTHIVE_{}_PORT", name.to_uppercase()), free_port().to_string()))
        .collect();
    env.extend(
        [
            ("EVENTHIVE_METRICS_ENABLED", "false"),
            ("EVENTHIVE_RATE_LIMIT_IP_PER_SEC", "0"),
            ("EVENTHIVE_RATE_LIMIT_USER_PER_SEC", "0"),
            ("EVENTHIVE_PASSWORD_HASH_MEMORY_KIB", "1024"),
            ("EVENTHIVE_PASSWORD_HASH_ITERATIONS", "1"),
        ]
        .into_iter()
        .chain(super::scenarios::SETTINGS)
        .map(|(key, value)| (key.to_owned(), value.to_owned())),
    );
    let data = tempfile::Builder::new().prefix("eventhive-chaos-dev").tempdir()?;
    let mut dev = Dev { binary: binary.to_owned(), env, data, port, child: None };
    dev.start()?;
    let api = bench::api(&format!("http://127.0.0.1:{port}"))?;
    dev.wait_ready(&api).await?;
    let settings = Settings { data_dir: dev.data.path().to_owned(), ..Settings::default() };
    let load = super::load(options, &api.url);
    let sale = bench::sale(&api, &load).await?;
    let at = sale.capacity() / 3;
    let fault = async {
        let paid = when_paid(&settings, &sale.event().id, at).await;
        dev.kill();
        let mut steps = vec![format!("kill -9 of eventhive dev at {paid} paid")];
        let begun = Instant::now();
        match dev.start() {
            Ok(()) => match dev.wait_ready(&api).await {
                Ok(()) => steps
                    .push(format!("started again on the same data, ready in {:.1} s", begun.elapsed().as_secs_f64())),
                Err(error) => steps.push(format!("FAILED: {error:#}")),
            },
            Err(error) => steps.push(format!("FAILED: starting again: {error:#}")),
        }
        steps
    };
    let (race, fault) = race_with(&api, &sale, &load, fault).await;
    let bus = eventhive_platform::bus::connect(&settings).await?;
    let sources =
        truth::Sources { settings: &settings, api: &api, smtp: None, bus: bus.as_ref(), resends_allowed: true };
    let settling = Instant::now();
    let mut checks = truth::converge(&sources, &sale, &race).await;
    let settled = settling.elapsed();
    let fault_failed = fault.iter().any(|step| step.starts_with("FAILED"));
    checks.push(("the fault was injected and undone as planned".to_owned(), !fault_failed));
    Ok(Outcome { fault, race, checks, settled, seconds: started.elapsed().as_secs_f64() })
}
