//! Where the tests find PostgreSQL, RabbitMQ and Redis, and whether they are there. Every test
//! body runs on the embedded backends, which need nothing; the same body runs on the real
//! infrastructure when it answers. What happens when it does not is the tester's choice,
//! `EVENTHIVE_TEST_INFRA`:
//! - unset or `auto`: the infrastructure tests are skipped, and the run says so at its start
//!   and its end (a fresh machine with only a Rust toolchain passes);
//! - `required` (what CI sets): a missing server fails every infrastructure test, by name;
//! - `off`: the infrastructure tests are skipped even when the servers answer.
//!
//! The URLs are `EVENTHIVE_TEST_DATABASE_URL`, `EVENTHIVE_TEST_AMQP_URL` and
//! `EVENTHIVE_TEST_REDIS_URL`, by default the servers' standard ports on loopback.

// Test helpers fail by panicking, exactly like the assertions around them.
#![allow(clippy::panic)]

use std::{
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    sync::OnceLock,
    time::Duration,
};

/// What to do about the real infrastructure (`EVENTHIVE_TEST_INFRA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Required,
    Off,
}

pub fn mode() -> Mode {
    match std::env::var("EVENTHIVE_TEST_INFRA").unwrap_or_default().trim() {
        "required" => Mode::Required,
        "off" => Mode::Off,
        _ => Mode::Auto,
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

pub fn database_url() -> String {
    env_or("EVENTHIVE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432")
}

pub fn amqp_url() -> String {
    env_or("EVENTHIVE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

pub fn redis_url() -> String {
    env_or("EVENTHIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// The servers that do not accept a connection, as "PostgreSQL at host:port"; checked once per
/// test process.
pub fn missing() -> &'static [String] {
    static MISSING: OnceLock<Vec<String>> = OnceLock::new();
    MISSING.get_or_init(|| {
        [("PostgreSQL", database_url(), 5432), ("RabbitMQ", amqp_url(), 5672), ("Redis", redis_url(), 6379)]
            .into_iter()
            .filter_map(|(server, url, default_port)| {
                let address = host_and_port(&url, default_port);
                (!answers(&address)).then(|| format!("{server} at {address}"))
            })
            .collect()
    })
}

/// `host:port` of a URL such as `postgres://user:pw@host:5432/db`.
fn host_and_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host_port.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    }
}

fn answers(address: &str) -> bool {
    let addresses: Vec<SocketAddr> = address.to_socket_addrs().map(Iterator::collect).unwrap_or_default();
    addresses.iter().any(|a| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok())
}

/// How to run the infrastructure tests, for the messages below.
pub const HOW_TO_RUN: &str = "start PostgreSQL, RabbitMQ and Redis (`bash scripts/ensure-infra.sh` on \
Debian/Ubuntu, or `docker compose -f deploy/test-infra.compose.yaml up -d`) or point \
EVENTHIVE_TEST_DATABASE_URL, EVENTHIVE_TEST_AMQP_URL and EVENTHIVE_TEST_REDIS_URL at yours";

/// Called first by every infrastructure test: `true` runs it; `false` skips it (it then
/// returns at once); a missing server under `required` fails it by name.
pub fn run_infra_test() -> bool {
    match (mode(), missing()) {
        (Mode::Off, _) => false,
        (_, []) => true,
        (Mode::Required, missing) => {
            panic!("EVENTHIVE_TEST_INFRA=required, but {} do(es) not answer: {HOW_TO_RUN}", missing.join(", "))
        }
        (Mode::Auto, missing) => {
            eprintln!("skipped on the real infrastructure: {} not reachable", missing.join(", "));
            false
        }
    }
}

/// One paragraph on which backends this run tests, and how to run the other.
pub fn report() -> String {
    match (mode(), missing()) {
        (Mode::Off, _) => format!(
            "Backends: embedded only (EVENTHIVE_TEST_INFRA=off); the infrastructure tests pass without running. \
             To run them too: unset EVENTHIVE_TEST_INFRA and {HOW_TO_RUN}."
        ),
        (_, []) => format!(
            "Backends: embedded (SQLite, in-process bus) and infrastructure (PostgreSQL {}, RabbitMQ {}, Redis {}): \
             every test body runs on both.",
            host_and_port(&database_url(), 5432),
            host_and_port(&amqp_url(), 5672),
            host_and_port(&redis_url(), 6379)
        ),
        (Mode::Required, missing) => format!(
            "Backends: infrastructure REQUIRED but {} not reachable: every infrastructure test fails. {HOW_TO_RUN}.",
            missing.join(", ")
        ),
        (Mode::Auto, missing) => format!(
            "Backends: embedded only: {} not reachable, so the infrastructure tests pass without running. \
             To run them: {HOW_TO_RUN}.",
            missing.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_urls_with_or_without_ports() {
        assert_eq!(host_and_port("postgres://postgres@127.0.0.1:5432", 5432), "127.0.0.1:5432");
        assert_eq!(host_and_port("amqp://guest:guest@mq:5673/%2f", 5672), "mq:5673");
        assert_eq!(host_and_port("redis://cache", 6379), "cache:6379");
    }
}
