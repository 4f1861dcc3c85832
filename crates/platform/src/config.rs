//! Typed configuration shared by every service: built-in defaults, then an optional TOML file
//! (`EVENTHIVE_CONFIG`), then `EVENTHIVE_*` environment variables. It is validated once at
//! start-up, and a bad value stops the process with a message that names the setting.

use std::path::PathBuf;

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// Every setting of every service. One flat struct keeps the environment variables easy to
/// guess: field `gateway_port` is `EVENTHIVE_GATEWAY_PORT`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Address every listener binds to.
    pub bind_host: String,
    pub gateway_port: u16,
    pub identity_port: u16,
    pub catalog_port: u16,
    pub ticketing_port: u16,
    pub payments_port: u16,
    pub notifications_port: u16,
    pub analytics_port: u16,
    /// Where the gateway reaches identity; defaults to `http://127.0.0.1:<identity_port>`.
    pub identity_url: Option<String>,
    /// Where the gateway and ticketing reach catalog; defaults to `http://127.0.0.1:<catalog_port>`.
    pub catalog_url: Option<String>,
    /// Where the gateway reaches ticketing; defaults to `http://127.0.0.1:<ticketing_port>`.
    pub ticketing_url: Option<String>,
    /// Where ticketing reaches payments; defaults to `http://127.0.0.1:<payments_port>`.
    pub payments_url: Option<String>,
    /// Where the gateway and the CLI reach notifications.
    pub notifications_url: Option<String>,
    /// Where the gateway and the CLI reach analytics.
    pub analytics_url: Option<String>,
    /// Port of this process's Prometheus metrics listener (`GET /metrics`), apart from the
    /// public one (0: any free port).
    pub metrics_port: Option<u16>,
    /// `false` serves no metrics listener (`EVENTHIVE_METRICS_ENABLED=false`), e.g. when
    /// several processes share a host and nobody scrapes them.
    pub metrics_enabled: bool,

    /// A PostgreSQL server URL; each service uses its own database `<database_prefix>_<service>`
    /// on it, created if missing. Unset: embedded SQLite files under `data_dir`.
    pub database_url: Option<String>,
    pub database_prefix: String,
    /// Connections each service keeps to PostgreSQL at most. Seven services share one server:
    /// the sum must stay below its `max_connections` (100 by default).
    pub database_max_connections: u32,
    /// Where embedded storage lives.
    pub data_dir: PathBuf,
    /// RabbitMQ; unset: the in-process bus.
    pub amqp_url: Option<String>,
    /// Name of the durable topic exchange domain events are published to.
    pub amqp_exchange: String,
    /// Redis, for state replicas share (rate limits); unset: in memory.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments can share one server.
    pub redis_prefix: String,

    /// Unset: pretty for `eventhive dev` and the other commands a person runs, JSON lines for
    /// `eventhive serve` (production).
    pub log_format: Option<LogFormat>,

    /// Lifetime of an access token (JWT).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token; each use rotates it.
    pub refresh_token_ttl_secs: u64,
    /// Argon2id memory cost in KiB (OWASP: at least 19 MiB with 2 iterations).
    pub password_hash_memory_kib: u32,
    pub password_hash_iterations: u32,

    /// Requests per second per client IP at the gateway (burst twice that); 0 turns it off.
    pub rate_limit_ip_per_sec: u32,
    /// Requests per second per signed-in user at the gateway (burst twice that); 0 turns it off.
    pub rate_limit_user_per_sec: u32,
    /// Bound on one public request, gRPC calls included.
    pub request_timeout_ms: u64,
    /// Deadline of one gRPC call between services.
    pub grpc_deadline_ms: u64,
    /// Take the client IP from the last `X-Forwarded-For` hop (behind one trusted proxy or
    /// ingress); otherwise the peer address is the client.
    pub trust_forwarded_for: bool,
    /// Origins browsers may call the API from; `*` allows any.
    pub cors_allowed_origins: String,
    /// How long in-flight work may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Dev mode (`eventhive dev`): developer conveniences such as the dev inbox at
    /// `GET /dev/mail` are served. Never set in production: the inbox holds ticket codes.
    pub dev_mode: bool,
    /// How often the outbox relay looks for unpublished messages when nothing woke it.
    pub outbox_poll_ms: u64,

    /// How long a new order holds its tickets.
    pub hold_ttl_secs: u64,
    /// Counter rows per ticket type: more rows let more buyers of one ticket type hold
    /// tickets at the same moment without waiting on one hot row.
    pub inventory_shards: u32,
    /// How often ticketing expires holds and resumes interrupted sagas.
    pub sweep_interval_ms: u64,
    /// The simulated card processor's latency per call, for benchmarks.
    pub payment_latency_ms: u64,
    /// The simulated card processor's share of calls failing transiently (0.0 to 1.0).
    pub payment_failure_rate: f64,
    /// How long a charge whose outcome is unknown is left alone before payments asks the
    /// processor how it ended. Must exceed one processor call's timeout.
    pub payment_settle_delay_ms: u64,

    /// An SMTP server for outgoing mail (`smtp://host:port`, `smtps://` for TLS); unset: mail
    /// is kept in the dev inbox served at `GET /dev/mail`.
    pub smtp_url: Option<String>,
    /// The sender of every email.
    pub smtp_from: String,
    /// Attempts to deliver one email before it is dead-lettered (with the default backoff, 12
    /// attempts ride out about 18 minutes of SMTP outage).
    pub smtp_max_attempts: u32,
    /// The first retry's delay; it doubles per attempt (at most 5 minutes).
    pub smtp_retry_base_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".into(),
            gateway_port: 8080,
            identity_port: 50051,
            catalog_port: 50052,
            ticketing_port: 50053,
            payments_port: 50054,
            notifications_port: 50055,
            analytics_port: 50056,
            identity_url: None,
            catalog_url: None,
            ticketing_url: None,
            payments_url: None,
            notifications_url: None,
            analytics_url: None,
            metrics_port: Some(9464),
            metrics_enabled: true,
            database_url: None,
            database_prefix: "eventhive".into(),
            database_max_connections: 12,
            data_dir: PathBuf::from(".eventhive"),
            amqp_url: None,
            amqp_exchange: "eventhive.events".into(),
            redis_url: None,
            redis_prefix: "eventhive".into(),
            log_format: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            password_hash_memory_kib: 19 * 1024,
            password_hash_iterations: 2,
            rate_limit_ip_per_sec: 100,
            rate_limit_user_per_sec: 20,
            request_timeout_ms: 15_000,
            grpc_deadline_ms: 10_000,
            trust_forwarded_for: false,
            cors_allowed_origins: "*".into(),
            shutdown_grace_secs: 10,
            dev_mode: false,
            outbox_poll_ms: 500,
            hold_ttl_secs: 600,
            inventory_shards: 4,
            sweep_interval_ms: 1000,
            payment_latency_ms: 0,
            payment_failure_rate: 0.0,
            payment_settle_delay_ms: 5_000,
            smtp_url: None,
            smtp_from: "EventHive <tickets@eventhive.dev>".into(),
            smtp_max_attempts: 12,
            smtp_retry_base_ms: 1_000,
        }
    }
}

/// A setting that is missing, malformed or out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {variable}: {message}")]
pub struct ConfigError {
    /// The environment variable that sets it.
    pub variable: String,
    pub message: String,
}

impl ConfigError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self { variable: format!("EVENTHIVE_{}", field.to_uppercase()), message: message.into() }
    }
}

impl Settings {
    /// Defaults, then the TOML file named by `EVENTHIVE_CONFIG` (if any), then the environment.
    pub fn load() -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Ok(path) = std::env::var("EVENTHIVE_CONFIG") {
            if !std::path::Path::new(&path).is_file() {
                return Err(ConfigError::new("config", format!("no such file: {path}")));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("EVENTHIVE_").ignore(&["CONFIG", "TEST_BACKEND"]));
        let settings: Settings = figment.extract().map_err(|error| {
            let field = error.path.join("_");
            ConfigError::new(if field.is_empty() { "config" } else { &field }, error.kind.to_string())
        })?;
        settings.validated()
    }

    /// Checks what types alone cannot, and treats empty optional values as unset.
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        for value in [
            &mut self.database_url,
            &mut self.amqp_url,
            &mut self.redis_url,
            &mut self.identity_url,
            &mut self.catalog_url,
            &mut self.ticketing_url,
            &mut self.payments_url,
            &mut self.notifications_url,
            &mut self.analytics_url,
            &mut self.smtp_url,
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
        let urls: [(&str, &Option<String>, &[&str], &str); 10] = [
            (
                "database_url",
                &self.database_url,
                &["postgres://", "postgresql://"],
                "a postgres:// URL (leave it unset for embedded SQLite)",
            ),
            ("amqp_url", &self.amqp_url, &["amqp://", "amqps://"], "an amqp:// or amqps:// URL"),
            ("redis_url", &self.redis_url, &["redis://", "rediss://"], "a redis:// or rediss:// URL"),
            ("identity_url", &self.identity_url, &["http://", "https://"], "an http:// or https:// URL"),
            ("catalog_url", &self.catalog_url, &["http://", "https://"], "an http:// or https:// URL"),
            ("ticketing_url", &self.ticketing_url, &["http://", "https://"], "an http:// or https:// URL"),
            ("payments_url", &self.payments_url, &["http://", "https://"], "an http:// or https:// URL"),
            ("notifications_url", &self.notifications_url, &["http://", "https://"], "an http:// or https:// URL"),
            ("analytics_url", &self.analytics_url, &["http://", "https://"], "an http:// or https:// URL"),
            ("smtp_url", &self.smtp_url, &["smtp://", "smtps://"], "an smtp:// or smtps:// URL"),
        ];
        for (field, value, schemes, expected) in urls {
            if let Some(url) = value
                && !schemes.iter().any(|scheme| url.starts_with(scheme))
            {
                return Err(ConfigError::new(field, format!("expected {expected}")));
            }
        }
        let valid_name = |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name(&self.database_prefix) {
            return Err(ConfigError::new("database_prefix", "use letters, digits and underscores only"));
        }
        if self.access_token_ttl_secs == 0 || self.access_token_ttl_secs > 24 * 3600 {
            return Err(ConfigError::new("access_token_ttl_secs", "must be between 1 and 86400"));
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return Err(ConfigError::new("refresh_token_ttl_secs", "must not be shorter than the access token's"));
        }
        if self.password_hash_memory_kib < 8 {
            return Err(ConfigError::new("password_hash_memory_kib", "must be at least 8"));
        }
        if self.password_hash_iterations == 0 {
            return Err(ConfigError::new("password_hash_iterations", "must be at least 1"));
        }
        if self.request_timeout_ms == 0 || self.grpc_deadline_ms == 0 {
            return Err(ConfigError::new("request_timeout_ms", "timeouts must be positive"));
        }
        if self.smtp_max_attempts == 0 {
            return Err(ConfigError::new("smtp_max_attempts", "must be at least 1"));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::new("database_max_connections", "must be at least 1"));
        }
        if self.hold_ttl_secs == 0 {
            return Err(ConfigError::new("hold_ttl_secs", "must be positive"));
        }
        if !(1..=64).contains(&self.inventory_shards) {
            return Err(ConfigError::new("inventory_shards", "must be between 1 and 64"));
        }
        if self.sweep_interval_ms == 0 {
            return Err(ConfigError::new("sweep_interval_ms", "must be positive"));
        }
        if !(0.0..=1.0).contains(&self.payment_failure_rate) {
            return Err(ConfigError::new("payment_failure_rate", "must be between 0.0 and 1.0"));
        }
        if self.outbox_poll_ms == 0 {
            return Err(ConfigError::new("outbox_poll_ms", "must be positive"));
        }
        Ok(self)
    }

    /// The URL a client of `service` dials, when it is not configured explicitly.
    pub fn service_url(&self, explicit: &Option<String>, port: u16) -> String {
        explicit.clone().unwrap_or_else(|| format!("http://{}:{}", self.bind_host, port))
    }

    pub fn identity_endpoint(&self) -> String {
        self.service_url(&self.identity_url, self.identity_port)
    }

    pub fn catalog_endpoint(&self) -> String {
        self.service_url(&self.catalog_url, self.catalog_port)
    }

    pub fn ticketing_endpoint(&self) -> String {
        self.service_url(&self.ticketing_url, self.ticketing_port)
    }

    pub fn payments_endpoint(&self) -> String {
        self.service_url(&self.payments_url, self.payments_port)
    }

    pub fn notifications_endpoint(&self) -> String {
        self.service_url(&self.notifications_url, self.notifications_port)
    }

    pub fn analytics_endpoint(&self) -> String {
        self.service_url(&self.analytics_url, self.analytics_port)
    }
}

#[cfg(test)]
// figment's Jail returns its own large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Settings::default().validated().is_ok());
    }

    #[test]
    fn a_bad_url_names_its_variable() {
        let settings = Settings { database_url: Some("mysql://x".into()), ..Settings::default() };
        let error = settings.validated().unwrap_err();
        assert_eq!(error.variable, "EVENTHIVE_DATABASE_URL");
    }

    #[test]
    fn empty_optional_values_are_unset() {
        let settings = Settings { redis_url: Some(" ".into()), ..Settings::default() }.validated().unwrap();
        assert_eq!(settings.redis_url, None);
    }

    #[test]
    fn a_malformed_environment_value_names_its_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("EVENTHIVE_GATEWAY_PORT", "eighty");
            let error = Settings::load().unwrap_err();
            assert_eq!(error.variable, "EVENTHIVE_GATEWAY_PORT");
            Ok(())
        });
    }

    #[test]
    fn the_environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("eventhive.toml", "gateway_port = 9000\ncatalog_port = 9001\n")?;
            jail.set_env("EVENTHIVE_CONFIG", "eventhive.toml");
            jail.set_env("EVENTHIVE_GATEWAY_PORT", "9100");
            let settings = Settings::load().unwrap();
            assert_eq!(settings.gateway_port, 9100);
            assert_eq!(settings.catalog_port, 9001);
            Ok(())
        });
    }
}
