//! Rules of the public contract that more than one service enforces: the `Idempotency-Key`
//! format, page sizes and ticket quantities. Each is written here once; the gateway checks it
//! at the edge (so a bad request never costs a call) and the service that owns the data checks
//! it again (so a caller that bypasses the gateway gets the same answer).

use std::fmt;

/// A value that breaks one of these rules, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    /// The field or header as a client names it (`page_size`, `Idempotency-Key`).
    pub field: String,
    pub message: String,
}

impl RuleError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// A client's `Idempotency-Key`: 1 to 255 printable ASCII characters (API.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const HEADER: &'static str = "Idempotency-Key";
    pub const MAX_LEN: usize = 255;

    pub fn parse(key: &str) -> Result<Self, RuleError> {
        let printable = key.bytes().all(|b| (0x20..0x7f).contains(&b));
        if key.is_empty() || key.len() > Self::MAX_LEN || !printable {
            return Err(RuleError::new(Self::HEADER, "must be 1 to 255 printable ASCII characters"));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many items one page of a list holds: 1 to 100, 20 when the client does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(i64);

impl PageSize {
    pub const FIELD: &'static str = "page_size";
    pub const DEFAULT: PageSize = PageSize(20);
    pub const MAX: i64 = 100;

    /// From the public API's query, where the parameter may be absent.
    pub fn parse(requested: Option<i64>) -> Result<Self, RuleError> {
        match requested {
            None => Ok(Self::DEFAULT),
            Some(size) if (1..=Self::MAX).contains(&size) => Ok(Self(size)),
            Some(_) => Err(RuleError::new(Self::FIELD, format!("must be between 1 and {}", Self::MAX))),
        }
    }

    /// From an internal (protobuf) request, where 0 is proto3's "not set".
    pub fn from_wire(requested: i64) -> Result<Self, RuleError> {
        Self::parse((requested != 0).then_some(requested))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// How many tickets of one type an order line asks for: at least 1. The total of an order is
/// summed with [`Quantity::total`], which refuses what would overflow instead of wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    /// Far above any event's per-order cap, far below where sums could overflow.
    pub const MAX: i64 = 1_000_000;

    /// `field` names the line, e.g. `items[2].quantity`.
    pub fn parse(field: impl Into<String>, quantity: i64) -> Result<Self, RuleError> {
        if quantity < 1 {
            return Err(RuleError::new(field, "must be at least 1"));
        }
        if quantity > Self::MAX {
            return Err(RuleError::new(field, format!("must be at most {}", Self::MAX)));
        }
        Ok(Self(quantity))
    }

    /// The tickets of an order, summed without overflow.
    pub fn total(quantities: impl IntoIterator<Item = Quantity>) -> Result<i64, RuleError> {
        quantities
            .into_iter()
            .try_fold(0i64, |sum, quantity| sum.checked_add(quantity.0))
            .ok_or_else(|| RuleError::new("items", "asks for too many tickets"))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// An order has at most [`Self::MAX_LINES`] items. Checked before any item is looked at,
    /// so a huge `items` array costs one comparison, never a query per item.
    pub fn lines(count: usize) -> Result<(), RuleError> {
        if count > Self::MAX_LINES {
            return Err(RuleError::new("items", format!("must have at most {} items", Self::MAX_LINES)));
        }
        Ok(())
    }

    /// The highest per-order cap an event may set: an order of more lines (each at least one
    /// ticket) could never be placed.
    pub const MAX_LINES: usize = 100;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_printable_ascii_up_to_255() {
        assert!(IdempotencyKey::parse("pay-1").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "tab\there", "é", &"k".repeat(256)] {
            assert_eq!(IdempotencyKey::parse(bad).unwrap_err().field, "Idempotency-Key", "{bad:?}");
        }
    }

    #[test]
    fn page_sizes_default_to_20_and_stay_within_1_to_100() {
        assert_eq!(PageSize::parse(None).unwrap().get(), 20);
        assert_eq!(PageSize::from_wire(0).unwrap().get(), 20);
        assert_eq!(PageSize::parse(Some(100)).unwrap().get(), 100);
        assert!(PageSize::parse(Some(0)).is_err());
        assert!(PageSize::parse(Some(101)).is_err());
        assert!(PageSize::from_wire(-1).is_err());
    }

    #[test]
    fn quantities_are_positive_and_their_total_never_wraps() {
        assert!(Quantity::parse("q", 0).is_err());
        assert!(Quantity::parse("q", i64::MAX).is_err());
        let lines = [Quantity::parse("a", 2).unwrap(), Quantity::parse("b", 3).unwrap()];
        assert_eq!(Quantity::total(lines).unwrap(), 5);
        let huge = Quantity(i64::MAX);
        assert!(Quantity::total([huge, huge]).is_err());
    }
}
