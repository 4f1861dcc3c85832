//! The SQL of ticketing, one module per group of tables, so that each table has exactly one
//! owner and every other module calls that owner's named functions:
//!
//! - [`orders`] owns `orders`, `order_items` and `buyer_event_totals`;
//! - [`tickets`] owns `tickets`;
//! - [`owed_refunds`] owns `owed_refunds` (captured payments of ended orders, to give back);
//! - [`catalog`] owns `events` and `ticket_types` (the copy of catalog);
//! - [`admissions`] owns `admission_keys` (events with a waiting room).
//!
//! Two tables are owned by the module whose rules they carry: `inventory_shards` and
//! `order_allocations` by [`crate::inventory`], `idempotency_keys` by [`crate::idempotency`].
//! Ids travel as their types and are bound to SQL as their canonical text.

pub(crate) mod admissions;
pub(crate) mod catalog;
pub(crate) mod orders;
pub(crate) mod owed_refunds;
pub(crate) mod tickets;
