//! Typed configuration shared by every service: built-in defaults, then an optional TOML file
//! (`EVENTHIVE_CONFIG`), then `EVENTHIVE_*` environment variables. It is validated once at
//! start-up, and a bad value stops the process with a message that names the setting.

use std::{collections::BTreeMap, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// The settings every service shares (where storage, the bus and Redis are, deadlines, run
/// mode), plus each service's own section and each service's port and URL, kept as raw values
/// until the service that owns them reads them with [`Settings::section`]. All of them live in
/// one flat namespace so the environment variables stay easy to guess: `hold_ttl_secs` is
/// `EVENTHIVE_HOLD_TTL_SECS`, `catalog_port` is `EVENTHIVE_CATALOG_PORT`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Address every listener binds to.
    pub bind_host: String,
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

    /// The deployment's secret key, base64 (see `secrets`); or the file that holds it.
    /// Required by `eventhive serve`; `eventhive dev` makes one in `data_dir`.
    pub secret_key: Option<SecretText>,
    pub secret_key_file: Option<PathBuf>,
    /// The key being replaced, while values it sealed are sealed again (`eventhive keys rotate`).
    pub previous_secret_key: Option<SecretText>,
    pub previous_secret_key_file: Option<PathBuf>,

    /// An OTLP/gRPC collector (`http://otel-collector:4317`) that traces are exported to.
    /// Unset: no traces are exported, and no exporter or tracing layer runs.
    pub otlp_endpoint: Option<String>,

    /// Unset: pretty for `eventhive dev` and the other commands a person runs, JSON lines for
    /// `eventhive serve` (production).
    pub log_format: Option<LogFormat>,

    /// Deadline of one gRPC call between services.
    pub grpc_deadline_ms: u64,
    /// How long in-flight work may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Dev mode (`eventhive dev`): developer conveniences such as the dev inbox at
    /// `GET /dev/mail` are served. Never set in production: the inbox holds ticket codes and
    /// needs no login. So no file or variable can set it (`EVENTHIVE_DEV_MODE` is refused as
    /// an unknown setting); only `eventhive dev` and the test harness do, in code.
    #[serde(skip)]
    pub dev_mode: bool,
    /// How often the outbox relay looks for unpublished messages when nothing woke it.
    pub outbox_poll_ms: u64,
    /// How long a consumer keeps retrying a message whose handler fails, counted from its first
    /// failure, before it dead-letters it: long enough to outlast a database failover or a
    /// dependency that is down for a while (default one hour).
    pub bus_retry_for_secs: u64,
    /// The wait before a failed message's first retry; it doubles with every failure.
    pub bus_retry_first_ms: u64,
    /// The longest wait between two retries, so that a message is tried again soon after an
    /// outage ends.
    pub bus_retry_max_ms: u64,

    /// Every other key: each service's section (read with [`Settings::section`]) and each
    /// service's `<name>_port` and `<name>_url` (read with [`Settings::port`] and
    /// [`Settings::endpoint`]). The composition layer fills in every service's default port.
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
}

/// One service's own settings: a struct of plain fields with defaults, read from the same flat
/// namespace as the shared settings (so its field `hold_ttl_secs` is `EVENTHIVE_HOLD_TTL_SECS`).
pub trait Section: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// Checks what types alone cannot; the error names the variable.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// The keys this section owns, for spotting misspelled settings.
    fn keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// A setting's secret value: read and written as itself, never shown by `Debug` (settings
/// appear in logs and panics).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretText {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<secret>\"")
    }
}

/// The section of a service that has no settings of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NoSettings {}

impl Section for NoSettings {}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".into(),
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
            secret_key: None,
            secret_key_file: None,
            previous_secret_key: None,
            previous_secret_key_file: None,
            log_format: None,
            otlp_endpoint: None,
            grpc_deadline_ms: 10_000,
            shutdown_grace_secs: 10,
            dev_mode: false,
            outbox_poll_ms: 500,
            bus_retry_for_secs: 3600,
            bus_retry_first_ms: 200,
            bus_retry_max_ms: 60_000,
            sections: BTreeMap::new(),
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
    /// An error in the setting `field` (a key such as `hold_ttl_secs`).
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self { variable: variable(field), message: message.into() }
    }
}

/// The environment variable of a settings key.
pub fn variable(key: &str) -> String {
    format!("EVENTHIVE_{}", key.to_uppercase())
}

/// Variables that are not settings: the config file's path, the test harness's own, and the
/// switch that regenerates docs/openapi.json.
const NOT_SETTINGS: [&str; 3] = ["CONFIG", "TEST_", "UPDATE_OPENAPI"];

impl Settings {
    /// Defaults, then the TOML file named by `EVENTHIVE_CONFIG` (if any), then the environment.
    /// Each service's section is checked later, by [`Settings::section`].
    pub fn load() -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Ok(path) = std::env::var("EVENTHIVE_CONFIG") {
            if !std::path::Path::new(&path).is_file() {
                return Err(ConfigError::new("config", format!("no such file: {path}")));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(
            Env::prefixed("EVENTHIVE_").filter(|key| !NOT_SETTINGS.iter().any(|skip| key.as_str().starts_with(skip))),
        );
        let settings: Settings = figment.extract().map_err(|error| {
            let field = error.path.join("_");
            ConfigError::new(if field.is_empty() { "config" } else { &field }, error.kind.to_string())
        })?;
        settings.validated()
    }

    /// Checks what types alone cannot, and treats empty optional values as unset.
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        for value in [&mut self.database_url, &mut self.amqp_url, &mut self.redis_url, &mut self.otlp_endpoint] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
        self.sections.retain(|_, value| !matches!(value, serde_json::Value::String(v) if v.trim().is_empty()));
        let urls: [(&str, &Option<String>, &[&str], &str); 4] = [
            (
                "database_url",
                &self.database_url,
                &["postgres://", "postgresql://"],
                "a postgres:// URL (leave it unset for embedded SQLite)",
            ),
            ("amqp_url", &self.amqp_url, &["amqp://", "amqps://"], "an amqp:// or amqps:// URL"),
            ("redis_url", &self.redis_url, &["redis://", "rediss://"], "a redis:// or rediss:// URL"),
            (
                "otlp_endpoint",
                &self.otlp_endpoint,
                &["http://", "https://"],
                "an http:// or https:// URL of an OTLP/gRPC collector",
            ),
        ];
        for (field, value, schemes, expected) in urls {
            if let Some(url) = value {
                check_url(field, url, schemes, expected)?;
            }
        }
        let valid_name = |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name(&self.database_prefix) {
            return Err(ConfigError::new("database_prefix", "use letters, digits and underscores only"));
        }
        if self.grpc_deadline_ms == 0 {
            return Err(ConfigError::new("grpc_deadline_ms", "must be positive"));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::new("database_max_connections", "must be at least 1"));
        }
        if self.outbox_poll_ms == 0 {
            return Err(ConfigError::new("outbox_poll_ms", "must be positive"));
        }
        if self.bus_retry_first_ms == 0 {
            return Err(ConfigError::new("bus_retry_first_ms", "must be positive"));
        }
        if self.bus_retry_max_ms < self.bus_retry_first_ms {
            return Err(ConfigError::new("bus_retry_max_ms", "must be at least EVENTHIVE_BUS_RETRY_FIRST_MS"));
        }
        Ok(self)
    }

    /// A service's own settings: its section's defaults, overridden by whatever the file or
    /// the environment set, then validated.
    pub fn section<S: Section>(&self) -> Result<S, ConfigError> {
        let serde_json::Value::Object(mut fields) =
            serde_json::to_value(S::default()).map_err(|e| ConfigError::new("config", e.to_string()))?
        else {
            return Ok(S::default());
        };
        for (key, default) in fields.iter_mut() {
            if let Some(value) = self.sections.get(key) {
                *default = coerce(value, default);
            }
        }
        let fields = serde_json::Value::Object(fields);
        match serde_json::from_value::<S>(fields.clone()) {
            Ok(section) => {
                section.validate()?;
                Ok(section)
            }
            Err(error) => Err(ConfigError::new(
                &culprit::<S>(&fields).unwrap_or_else(|| "config".into()),
                without_position(&error),
            )),
        }
    }

    /// Sets one key of a section, a port or a URL (tests, and the CLI's flags).
    pub fn set(&mut self, key: &str, value: impl Serialize) {
        self.sections.insert(key.to_owned(), serde_json::to_value(value).unwrap_or_default());
    }

    /// Sets `key` unless the file or the environment already did.
    pub fn set_default(&mut self, key: &str, value: impl Serialize) {
        if !self.sections.contains_key(key) {
            self.set(key, value);
        }
    }

    /// The port `service` listens on (`EVENTHIVE_<SERVICE>_PORT`).
    pub fn port(&self, service: &str) -> Result<u16, ConfigError> {
        let key = format!("{service}_port");
        let value = self.sections.get(&key).ok_or_else(|| ConfigError::new(&key, "is not set"))?;
        let port = match value {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        port.and_then(|p| u16::try_from(p).ok()).ok_or_else(|| ConfigError::new(&key, "expected a port (0 to 65535)"))
    }

    /// Where `service` is dialed: `EVENTHIVE_<SERVICE>_URL`, else its port on `bind_host`.
    pub fn endpoint(&self, service: &str) -> Result<String, ConfigError> {
        let key = format!("{service}_url");
        match self.sections.get(&key) {
            Some(serde_json::Value::String(url)) => {
                check_url(&key, url, &["http://", "https://"], "an http:// or https:// URL")?;
                Ok(url.clone())
            }
            Some(_) => Err(ConfigError::new(&key, "expected an http:// or https:// URL")),
            None => Ok(format!("http://{}:{}", self.bind_host, self.port(service)?)),
        }
    }

    /// The keys the file or the environment set that `known` does not name: misspellings.
    pub fn unknown_keys<'a>(&'a self, known: &[String]) -> Vec<&'a str> {
        self.sections.keys().filter(|key| !known.contains(key)).map(String::as_str).collect()
    }
}

fn check_url(field: &str, url: &str, schemes: &[&str], expected: &str) -> Result<(), ConfigError> {
    if schemes.iter().any(|scheme| url.starts_with(scheme)) {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("expected {expected}")))
    }
}

/// Environment variables arrive as numbers, booleans or strings, whatever the field is; a
/// string field takes any of them as text, and a numeric field takes a numeric string.
fn coerce(value: &serde_json::Value, default: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (value, default) {
        (Value::Number(n), Value::String(_)) => Value::String(n.to_string()),
        (Value::Bool(b), Value::String(_)) => Value::String(b.to_string()),
        (Value::String(s), Value::Number(_)) => {
            serde_json::from_str::<Value>(s.trim()).ok().filter(Value::is_number).unwrap_or_else(|| value.clone())
        }
        (Value::String(s), Value::Bool(_)) => match s.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => value.clone(),
        },
        _ => value.clone(),
    }
}

/// The key whose value alone makes `S` fail to parse, so the error can name its variable.
fn culprit<S: Section>(fields: &serde_json::Value) -> Option<String> {
    let defaults = serde_json::to_value(S::default()).ok()?;
    fields.as_object()?.iter().find_map(|(key, value)| {
        let mut probe = defaults.clone();
        *probe.get_mut(key)? = value.clone();
        serde_json::from_value::<S>(probe).is_err().then(|| key.clone())
    })
}

fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
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
        let mut settings = Settings { redis_url: Some(" ".into()), ..Settings::default() };
        settings.set("smtp_url", "");
        let settings = settings.validated().unwrap();
        assert_eq!(settings.redis_url, None);
        assert!(!settings.sections.contains_key("smtp_url"));
    }

    #[test]
    fn a_malformed_environment_value_names_its_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("EVENTHIVE_GRPC_DEADLINE_MS", "soon");
            let error = Settings::load().unwrap_err();
            assert_eq!(error.variable, "EVENTHIVE_GRPC_DEADLINE_MS");
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
            assert_eq!(settings.port("gateway").unwrap(), 9100);
            assert_eq!(settings.port("catalog").unwrap(), 9001);
            Ok(())
        });
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Ticketing {
        hold_ttl_secs: u64,
        label: String,
        strict: bool,
    }

    impl Section for Ticketing {
        fn validate(&self) -> Result<(), ConfigError> {
            if self.hold_ttl_secs > 3600 {
                return Err(ConfigError::new("hold_ttl_secs", "at most an hour"));
            }
            Ok(())
        }
    }

    #[test]
    fn a_section_reads_its_keys_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("EVENTHIVE_HOLD_TTL_SECS", "600");
            jail.set_env("EVENTHIVE_LABEL", "42");
            jail.set_env("EVENTHIVE_STRICT", "true");
            let section: Ticketing = Settings::load().unwrap().section().unwrap();
            assert_eq!(section.hold_ttl_secs, 600);
            assert_eq!(section.label, "42");
            assert!(section.strict);
            Ok(())
        });
    }

    #[test]
    fn a_bad_section_value_names_its_variable() {
        let mut settings = Settings::default();
        settings.set("hold_ttl_secs", "ten minutes");
        assert_eq!(settings.section::<Ticketing>().unwrap_err().variable, "EVENTHIVE_HOLD_TTL_SECS");
        settings.set("hold_ttl_secs", 7200);
        assert_eq!(settings.section::<Ticketing>().unwrap_err().variable, "EVENTHIVE_HOLD_TTL_SECS");
    }

    #[test]
    fn endpoints_default_to_the_port_on_the_bind_host() {
        let mut settings = Settings::default();
        settings.set("catalog_port", 50052);
        assert_eq!(settings.endpoint("catalog").unwrap(), "http://127.0.0.1:50052");
        settings.set("catalog_url", "http://catalog:50052");
        assert_eq!(settings.endpoint("catalog").unwrap(), "http://catalog:50052");
        settings.set("catalog_url", "catalog:50052");
        assert_eq!(settings.endpoint("catalog").unwrap_err().variable, "EVENTHIVE_CATALOG_URL");
        assert_eq!(settings.port("nowhere").unwrap_err().variable, "EVENTHIVE_NOWHERE_PORT");
    }
}
