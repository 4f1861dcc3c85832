//! The platform kit: what every EventHive service is built on, so that no service re-invents
//! configuration, telemetry, error mapping, health, shutdown, storage or messaging.
//!
//! # Layout
//! - [`config`]: typed settings from defaults, an optional file and `EVENTHIVE_*` variables;
//!   shared ones, and each service's section.
//! - [`service`]: the one interface every service implements, and its entry in the list.
//! - [`telemetry`]: tracing, pretty in dev and JSON in production.
//! - [`problem`]: error kinds, RFC 9457 problem+json, and their gRPC `Status` form.
//! - [`grpc`]: serving and dialing gRPC with health, deadlines and request ids.
//! - [`metrics`]: Prometheus metrics on a listener of their own.
//! - [`shutdown`]: SIGINT/SIGTERM and bounded draining.
//! - [`storage`]: one database per service, PostgreSQL or SQLite, migrated at start-up.
//! - [`bus`]: the message bus trait, RabbitMQ and in-process.
//! - [`outbox`] and [`inbox`]: publish state changes reliably, consume them once.

pub mod bus;
pub mod config;
pub mod grpc;
pub mod inbox;
pub mod metrics;
pub mod outbox;
pub mod problem;
pub mod secrets;
pub mod service;
pub mod shutdown;
pub mod storage;
pub mod telemetry;

pub use async_trait;
pub use config::{NoSettings, Section, Settings};
pub use problem::{ErrorKind, FieldError, Problem};
pub use secrets::Secrets;
pub use service::{Context, Service};
pub use storage::Database;
