//! Money as integer minor units of one ISO 4217 currency. Never floating point; adding two
//! currencies is an error, not a conversion.

use serde::{Deserialize, Serialize};

/// An ISO 4217 alphabetic code, three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("must be an ISO 4217 currency code such as EUR")]
    InvalidCurrency,
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("the amount is out of range")]
    Overflow,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            [a, b, c] if crate::iso::is_currency(code) => Ok(Self([*a, *b, *c])),
            _ => Err(MoneyError::InvalidCurrency),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

/// An amount in the smallest unit of its currency (cents for EUR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Self { amount_minor, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let amount_minor = self.amount_minor.checked_add(other.amount_minor).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount_minor, self.currency))
    }

    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        let amount_minor = self.amount_minor.checked_mul(factor).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount_minor, self.currency))
    }
}

/// Digits after the decimal point of a currency (ISO 4217); two unless listed.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// "45.00 EUR" from 4500 minor units: how people read an amount (emails, the web pages).
/// Takes the code as a string because readers get it from the wire.
pub fn format_minor(amount_minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let amount = amount_minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{amount} {currency}");
    }
    let unit = 10u64.pow(digits);
    format!("{sign}{}.{:0width$} {currency}", amount / unit, amount % unit, width = digits as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", "", "ABC"] {
            assert_eq!(Currency::parse(bad), Err(MoneyError::InvalidCurrency), "{bad}");
        }
    }

    #[test]
    fn adding_two_currencies_is_an_error() {
        let eur = Currency::parse("EUR").unwrap();
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(Money::new(1, eur).checked_add(Money::new(2, eur)).unwrap().amount_minor, 3);
        assert!(matches!(Money::new(1, eur).checked_add(Money::new(2, usd)), Err(MoneyError::CurrencyMismatch(..))));
        assert_eq!(Money::new(i64::MAX, eur).checked_mul(2), Err(MoneyError::Overflow));
    }

    #[test]
    fn amounts_read_with_the_currency_s_minor_digits() {
        assert_eq!(format_minor(4500, "EUR"), "45.00 EUR");
        assert_eq!(format_minor(5, "EUR"), "0.05 EUR");
        assert_eq!(format_minor(1200, "JPY"), "1200 JPY");
        assert_eq!(format_minor(1234, "KWD"), "1.234 KWD");
        assert_eq!(format_minor(-150, "USD"), "-1.50 USD");
    }
}
