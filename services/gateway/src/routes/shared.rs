//! What more than one area of the API shares: the money wire type and the checks of the
//! contract's rules (`eventhive_domain::rules`) answered as problems.

use eventhive_domain::rules::{PageSize, RuleError};
use eventhive_platform::Problem;
use eventhive_proto::common;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MoneyDto {
    /// Integer minor units (cents for EUR).
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
}

impl MoneyDto {
    /// A service leaves an amount out only when there is none to tell: zero, of no currency.
    pub fn or_zero(money: Option<common::Money>) -> Self {
        money.map(Self::from).unwrap_or(Self { amount_minor: 0, currency: String::new() })
    }
}

impl From<common::Money> for MoneyDto {
    fn from(money: common::Money) -> Self {
        Self { amount_minor: money.amount_minor, currency: money.currency }
    }
}

/// A broken rule of the contract, answered as 422 `validation` naming its field.
pub fn invalid(error: RuleError) -> Problem {
    Problem::validation(error.field, error.message)
}

/// The `page_size` query parameter of a list.
pub fn page_size(requested: Option<i64>) -> Result<PageSize, Problem> {
    PageSize::parse(requested).map_err(invalid)
}
