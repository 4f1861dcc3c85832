//! The faults, each injected once the sale is under way (a share of the tickets paid, read from
//! ticketing's database, so it lands mid-sale however fast the machine is), then undone: what
//! was killed or stopped is started again before the invariants are checked, and a replica
//! lost for good is brought back after them, for the next scenario.

use std::time::{Duration, Instant};

use eventhive_platform::Settings;
use eventhive_test_support::{
    private::{PrivatePostgres, PrivateRabbit},
    smtp::SmtpServer,
    topology::Topology,
};

use super::{Chaos, Outcome, World, race_with, truth, when_paid};
use crate::bench;

/// Settings of every process of the topology, so that recovery is quick enough for CI: calls
/// time out sooner (payments past the deadline within seconds), the sweeper resumes
/// interrupted payments every half second, mail and bus retries start small, and the emails a
/// killed sender had in hand wait 20 s rather than 2 minutes (the SMTP server here answers in
/// milliseconds, so no send outlasts that lease).
pub const SETTINGS: [(&str, &str); 5] = [
    ("EVENTHIVE_SMTP_LEASE_MS", "20000"),
    ("EVENTHIVE_GRPC_DEADLINE_MS", "3000"),
    ("EVENTHIVE_SWEEP_INTERVAL_MS", "500"),
    ("EVENTHIVE_SMTP_RETRY_BASE_MS", "250"),
    ("EVENTHIVE_BUS_RETRY_MAX_MS", "2000"),
];

/// The simulated processor's latency while payments is slowed: past ticketing's deadline for
/// its call to payments (half of `EVENTHIVE_GRPC_DEADLINE_MS`).
const SLOW_PAYMENTS_MS: &str = "2500";

/// How long a restarted process may take to be ready again.
const RESTART_PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    KillEach,
    ReplicaLost,
    BrokerRestart,
    DatabaseRestart,
    PaymentsSlow,
    SmtpDown,
    DevKilled,
}

impl Scenario {
    pub fn all() -> Vec<Self> {
        use clap::ValueEnum;
        Self::value_variants().to_vec()
    }

    pub fn about(self) -> &'static str {
        match self {
            Self::KillEach => {
                "kill -9 of each service in turn mid-sale (one replica of the replicated ones), restarted"
            }
            Self::ReplicaLost => "one replica of ticketing and one of the gateway killed for good mid-sale",
            Self::BrokerRestart => "RabbitMQ stopped for 30 s mid-sale, then started",
            Self::DatabaseRestart => "PostgreSQL stopped at once (as a crash) mid-sale, started 5 s later",
            Self::PaymentsSlow => "payments slowed past the deadline for 10 s mid-sale",
            Self::SmtpDown => "the SMTP server down for a minute mid-sale",
            Self::DevKilled => "`eventhive dev` on the embedded backend killed mid-sale, started on the same data",
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

/// Runs one scenario on the shared topology.
pub async fn run(world: &mut World, scenario: Scenario, options: &Chaos) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let World { topology, postgres, rabbit, smtp, api } = world;
    let load = super::load(options, &api.url);
    let sale = bench::sale(api, &load).await?;
    let settings = topology.settings.clone();
    let at = sale.capacity() / 3;
    let event = sale.event().id.clone();
    let fault = async {
        let mut steps = Vec::new();
        // Every fault but one lands once a third of the tickets are paid; kill-each spreads its
        // kills over the sale.
        let paid = match scenario {
            Scenario::KillEach => 0,
            _ => when_paid(&settings, &event, at).await,
        };
        let result = match scenario {
            Scenario::KillEach => kill_each(topology, &settings, &event, sale.capacity(), &mut steps).await,
            Scenario::ReplicaLost => {
                topology.kill("ticketing-2");
                topology.kill("gateway-2");
                steps.push(format!("kill -9 ticketing-2 and gateway-2 at {paid} paid; back only after the checks"));
                Ok(())
            }
            Scenario::BrokerRestart => broker_restart(rabbit, paid, &mut steps).await,
            Scenario::DatabaseRestart => database_restart(postgres, paid, &mut steps).await,
            Scenario::PaymentsSlow => payments_slow(topology, paid, &mut steps).await,
            Scenario::SmtpDown => smtp_down(smtp, paid, &mut steps).await,
            Scenario::DevKilled => Ok(()),
        };
        if let Err(error) = result {
            steps.push(format!("FAILED: {error:#}"));
        }
        steps
    };
    let (race, fault) = race_with(api, &sale, &load, fault).await;
    let bus = eventhive_platform::bus::connect(&settings).await?;
    let sources = truth::Sources {
        settings: &settings,
        api,
        smtp: Some(smtp),
        bus: bus.as_ref(),
        resends_allowed: scenario == Scenario::KillEach,
    };
    let settling = Instant::now();
    let mut checks = truth::converge(&sources, &sale, &race).await;
    let settled = settling.elapsed();
    let fault_failed = fault.iter().any(|step| step.starts_with("FAILED"));
    checks.push(("the fault was injected and undone as planned".to_owned(), !fault_failed));
    if scenario == Scenario::ReplicaLost {
        for name in ["ticketing-2", "gateway-2"] {
            topology.start_instance(name, &[]);
            anyhow::ensure!(topology.wait_ready(name, RESTART_PATIENCE).await, "{name} did not come back");
        }
    }
    Ok(Outcome { fault, race, checks, settled, seconds: started.elapsed().as_secs_f64() })
}

async fn restart(topology: &mut Topology, name: &str, extra: &[(&str, &str)]) -> anyhow::Result<Duration> {
    let begun = Instant::now();
    topology.kill(name);
    topology.start_instance(name, extra);
    anyhow::ensure!(
        topology.wait_ready(name, RESTART_PATIENCE).await,
        "{name} not ready {RESTART_PATIENCE:?} after its restart\n{}",
        topology.tail_of_log(name)
    );
    Ok(begun.elapsed())
}

async fn kill_each(
    topology: &mut Topology,
    settings: &Settings,
    event: &str,
    capacity: i64,
    steps: &mut Vec<String>,
) -> anyhow::Result<()> {
    // The first replica of the replicated services; every other service's only process.
    let victims: Vec<String> = topology.instances().into_iter().filter(|name| !name.contains('-')).collect();
    let share = i64::try_from(victims.len())? + 2;
    for (index, name) in (1..).zip(&victims) {
        let paid = when_paid(settings, event, capacity * index / share).await;
        let took = restart(topology, name, &[]).await?;
        steps.push(format!("kill -9 {name} at {paid} paid; ready again after {:.1} s", took.as_secs_f64()));
    }
    Ok(())
}

async fn broker_restart(rabbit: &mut PrivateRabbit, paid: i64, steps: &mut Vec<String>) -> anyhow::Result<()> {
    rabbit.stop().await?;
    steps.push(format!("RabbitMQ stopped at {paid} paid"));
    tokio::time::sleep(Duration::from_secs(30)).await;
    let begun = Instant::now();
    rabbit.start_again().await?;
    steps.push(format!(
        "RabbitMQ started after 30 s down, taking connections in {:.1} s",
        begun.elapsed().as_secs_f64()
    ));
    Ok(())
}

async fn database_restart(postgres: &mut PrivatePostgres, paid: i64, steps: &mut Vec<String>) -> anyhow::Result<()> {
    postgres.stop().await?;
    steps.push(format!("PostgreSQL stopped (immediate) at {paid} paid"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    postgres.start_again().await?;
    steps.push("PostgreSQL started after 5 s down".to_owned());
    Ok(())
}

async fn payments_slow(topology: &mut Topology, paid: i64, steps: &mut Vec<String>) -> anyhow::Result<()> {
    restart(topology, "payments", &[("EVENTHIVE_PAYMENT_LATENCY_MS", SLOW_PAYMENTS_MS)]).await?;
    steps.push(format!("payments restarted at {paid} paid with {SLOW_PAYMENTS_MS} ms per processor call"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    restart(topology, "payments", &[]).await?;
    steps.push("payments back to full speed after 10 s".to_owned());
    Ok(())
}

async fn smtp_down(smtp: &mut SmtpServer, paid: i64, steps: &mut Vec<String>) -> anyhow::Result<()> {
    smtp.stop();
    steps.push(format!("SMTP server stopped at {paid} paid"));
    tokio::time::sleep(Duration::from_secs(60)).await;
    smtp.start_again().await?;
    steps.push("SMTP server started after 60 s down".to_owned());
    Ok(())
}
