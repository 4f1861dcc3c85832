//! Domain types that more than one service speaks: typed ids, money and the domain events
//! published on the bus.
//!
//! # Layout
//! - [`admission`]: the waiting room's signed admission tokens, signed there, verified by ticketing.
//! - [`ids`]: one newtype per kind of id, all from one macro.
//! - [`money`]: integer minor units plus an ISO 4217 currency.
//! - [`iso`]: the country and currency codes we accept.
//! - [`events`]: the versioned domain events and the envelope that carries them.
//! - [`rules`]: rules of the public contract more than one service enforces (Idempotency-Key,
//!   page size, quantities).

pub mod admission;
pub mod events;
pub mod ids;
pub mod iso;
pub mod money;
pub mod rules;

pub use ids::*;
pub use money::{Currency, Money, MoneyError};
