//! What more than one area of the API shares: the money wire type, the ISO code lists as
//! schemas, and the checks of the contract's rules (`eventhive_domain::rules`) answered as
//! problems.

use eventhive_domain::{
    iso,
    rules::{PageSize, RuleError},
};
use eventhive_platform::Problem;
use eventhive_proto::common;
use serde::{Deserialize, Serialize};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{ObjectBuilder, Schema, Type},
    },
};

/// A country as catalog takes it (`eventhive_domain::iso`): an ISO 3166-1 alpha-2 code. For
/// fields documented with `#[schema(value_type = CountryCode)]`.
pub struct CountryCode;

impl PartialSchema for CountryCode {
    fn schema() -> RefOr<Schema> {
        code_list("An ISO 3166-1 alpha-2 country code (upper case; lower case is taken too).", &iso::COUNTRIES)
    }
}

impl ToSchema for CountryCode {}

/// A currency as catalog and payments take it (`eventhive_domain::Currency`): an ISO 4217
/// code of a currency in circulation, upper case.
pub struct CurrencyCode;

impl PartialSchema for CurrencyCode {
    fn schema() -> RefOr<Schema> {
        code_list("An ISO 4217 code of a currency in circulation, upper case.", &iso::CURRENCIES)
    }
}

impl ToSchema for CurrencyCode {}

fn code_list(description: &str, codes: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(codes.iter().copied()))
        .into()
}

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
