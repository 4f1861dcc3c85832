//! Payments' domain types, parsed once from the wire so the rest of the service can trust them:
//! a card (whose number and CVC never reach a log or the database), and the charge and refund
//! requests; and the states a payment goes through.

use eventhive_domain::{Currency, Money, OrderId};
use eventhive_platform::FieldError;
use eventhive_proto::payments as wire;

/// A payment card as the buyer typed it. The number and the CVC are private and [`Debug`]
/// shows neither, so a card can be traced without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Card {
    /// Only the processor sees it (through [`Card::number`]); we keep [`Card::last4`].
    number: String,
    exp_month: u8,
    exp_year: u16,
    /// Sent to a real processor, which checks it; the simulated one ignores it.
    cvc: String,
}

impl Card {
    /// Checks every field and reports all that are wrong at once, under `card.*` paths.
    pub fn parse(card: &wire::Card) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let number = &card.number;
        if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError::new("card.number", "must be 12 to 19 digits"));
        } else if !luhn_valid(number) {
            errors.push(FieldError::new("card.number", "is not a valid card number"));
        }
        let exp_month = u8::try_from(card.exp_month).ok().filter(|m| (1..=12).contains(m));
        if exp_month.is_none() {
            errors.push(FieldError::new("card.exp_month", "must be between 1 and 12"));
        }
        let exp_year = u16::try_from(card.exp_year).ok().filter(|y| (2000..=2100).contains(y));
        if exp_year.is_none() {
            errors.push(FieldError::new("card.exp_year", "must be a four-digit year between 2000 and 2100"));
        }
        if !(3..=4).contains(&card.cvc.len()) || !card.cvc.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError::new("card.cvc", "must be 3 or 4 digits"));
        }
        match (exp_month, exp_year) {
            (Some(exp_month), Some(exp_year)) if errors.is_empty() => {
                Ok(Self { number: number.clone(), exp_month, exp_year, cvc: card.cvc.clone() })
            }
            _ => Err(errors),
        }
    }

    /// The full number: for the processor only, never for storage or logs.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The CVC: for the processor only.
    pub fn cvc(&self) -> &str {
        &self.cvc
    }

    pub fn last4(&self) -> &str {
        self.number.get(self.number.len().saturating_sub(4)..).unwrap_or_default()
    }

    pub fn brand(&self) -> &'static str {
        brand_of(&self.number)
    }

    pub fn exp_month(&self) -> u8 {
        self.exp_month
    }

    pub fn exp_year(&self) -> u16 {
        self.exp_year
    }

    /// Whether the card expired before `now`'s month; a card is good through its expiry month.
    pub fn is_expired_at(&self, now: time::OffsetDateTime) -> bool {
        (i32::from(self.exp_year), self.exp_month) < (now.year(), u8::from(now.month()))
    }
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("brand", &self.brand())
            .field("last4", &self.last4())
            .field("exp", &format_args!("{:02}/{}", self.exp_month, self.exp_year))
            .finish_non_exhaustive()
    }
}

/// The Luhn checksum every card number carries: catches a mistyped digit before any processor call.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (position, byte) in digits.bytes().rev().enumerate() {
        if !byte.is_ascii_digit() {
            return false;
        }
        let digit = u32::from(byte - b'0');
        sum += if position % 2 == 1 {
            let doubled = digit * 2;
            if doubled > 9 { doubled - 9 } else { doubled }
        } else {
            digit
        };
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A guess of the card network from the number's prefix (IIN ranges), shown to the buyer next
/// to the last four digits.
pub fn brand_of(number: &str) -> &'static str {
    let prefix = |n: usize| number.get(..n).and_then(|p| p.parse::<u32>().ok());
    if number.starts_with('4') {
        "visa"
    } else if prefix(2).is_some_and(|p| (51..=55).contains(&p)) || prefix(4).is_some_and(|p| (2221..=2720).contains(&p))
    {
        "mastercard"
    } else if prefix(2).is_some_and(|p| p == 34 || p == 37) {
        "amex"
    } else {
        "card"
    }
}

/// Longest idempotency key we accept; keys are opaque to us but end up in indexes.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
/// Longest refund reason we keep.
const MAX_REASON_LEN: usize = 500;

/// A valid charge request.
#[derive(Debug, Clone)]
pub struct ChargeInput {
    pub order_id: OrderId,
    pub amount: Money,
    pub card: Card,
    /// The caller's key for this attempt; `None` when it sent none (we then make one up).
    pub idempotency_key: Option<String>,
}

impl ChargeInput {
    pub fn parse(request: &wire::ChargeRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let order_id = parse_order_id(&request.order_id).map_err(|e| errors.push(e)).ok();
        let amount = match &request.amount {
            None => {
                errors.push(FieldError::new("amount", "is required"));
                None
            }
            Some(amount) => {
                if amount.amount_minor <= 0 {
                    errors.push(FieldError::new("amount.amount_minor", "must be greater than zero"));
                }
                match Currency::parse(&amount.currency) {
                    Ok(currency) if amount.amount_minor > 0 => Some(Money::new(amount.amount_minor, currency)),
                    Ok(_) => None,
                    Err(error) => {
                        errors.push(FieldError::new("amount.currency", error.to_string()));
                        None
                    }
                }
            }
        };
        let card = match &request.card {
            None => {
                errors.push(FieldError::new("card", "is required"));
                None
            }
            Some(card) => Card::parse(card).map_err(|e| errors.extend(e)).ok(),
        };
        let key = request.idempotency_key.trim();
        if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            errors.push(FieldError::new(
                "idempotency_key",
                format!("must be at most {MAX_IDEMPOTENCY_KEY_LEN} characters"),
            ));
        }
        let idempotency_key = (!key.is_empty()).then(|| key.to_owned());
        match (order_id, amount, card) {
            (Some(order_id), Some(amount), Some(card)) if errors.is_empty() => {
                Ok(Self { order_id, amount, card, idempotency_key })
            }
            _ => Err(errors),
        }
    }
}

/// A valid refund request.
#[derive(Debug, Clone)]
pub struct RefundInput {
    pub order_id: OrderId,
    pub reason: String,
}

impl RefundInput {
    pub fn parse(request: &wire::RefundRequest) -> Result<Self, Vec<FieldError>> {
        let order_id = parse_order_id(&request.order_id).map_err(|e| vec![e])?;
        let reason = request.reason.trim();
        if reason.chars().count() > MAX_REASON_LEN {
            return Err(vec![FieldError::new("reason", format!("must be at most {MAX_REASON_LEN} characters"))]);
        }
        Ok(Self { order_id, reason: reason.to_owned() })
    }
}

/// An order id in its canonical form, so that two spellings of one UUID are one order.
pub fn parse_order_id(raw: &str) -> Result<OrderId, FieldError> {
    OrderId::parse(raw.trim()).map_err(|_| FieldError::new("order_id", "must be a UUID"))
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Written before the processor is called; its outcome is not known yet.
    Pending,
    Captured,
    Declined,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Captured => "captured",
            Self::Declined => "declined",
            Self::Refunded => "refunded",
        }
    }

    pub fn from_stored(status: &str) -> anyhow::Result<Self> {
        match status {
            "pending" => Ok(Self::Pending),
            "captured" => Ok(Self::Captured),
            "declined" => Ok(Self::Declined),
            "refunded" => Ok(Self::Refunded),
            other => Err(anyhow::anyhow!("unknown stored payment status {other:?}")),
        }
    }
}

/// What a processor call was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    Charge,
    Refund,
}

impl AttemptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Refund => "refund",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_card(number: &str) -> wire::Card {
        wire::Card { number: number.into(), exp_month: 12, exp_year: 2099, cvc: "123".into() }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn luhn_accepts_the_test_cards_and_rejects_a_typo() {
        for number in
            ["4242424242424242", "4000000000000002", "4000000000009995", "4000000000000119", "5555555555554444"]
        {
            assert!(luhn_valid(number), "{number}");
        }
        assert!(luhn_valid("378282246310005"), "amex, odd length");
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid("42424242424242a2"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn brands_follow_the_number_prefix() {
        assert_eq!(brand_of("4242424242424242"), "visa");
        assert_eq!(brand_of("5105105105105100"), "mastercard");
        assert_eq!(brand_of("2221000000000009"), "mastercard");
        assert_eq!(brand_of("2720990000000007"), "mastercard");
        assert_eq!(brand_of("2721000000000000"), "card");
        assert_eq!(brand_of("378282246310005"), "amex");
        assert_eq!(brand_of("341111111111111"), "amex");
        assert_eq!(brand_of("6011111111111117"), "card");
    }

    #[test]
    fn a_valid_card_keeps_last4_and_brand_and_debug_hides_the_number() {
        let card = Card::parse(&wire_card("4242424242424242")).unwrap();
        assert_eq!(card.last4(), "4242");
        assert_eq!(card.brand(), "visa");
        let shown = format!("{card:?}");
        assert!(!shown.contains("4242424242424242"), "{shown}");
        assert!(!shown.contains("123"), "{shown}");
        assert!(shown.contains("4242"), "{shown}");
    }

    #[test]
    fn every_bad_card_field_is_reported_with_its_path() {
        let bad = wire::Card { number: "4242 4242".into(), exp_month: 13, exp_year: 99, cvc: "12a".into() };
        assert_eq!(
            fields(Card::parse(&bad).unwrap_err()),
            ["card.number", "card.exp_month", "card.exp_year", "card.cvc"]
        );
        let not_luhn = wire_card("4242424242424241");
        assert_eq!(fields(Card::parse(&not_luhn).unwrap_err()), ["card.number"]);
        let too_long = wire_card("42424242424242424242");
        assert_eq!(fields(Card::parse(&too_long).unwrap_err()), ["card.number"]);
        let month_zero = wire::Card { exp_month: 0, ..wire_card("4242424242424242") };
        assert_eq!(fields(Card::parse(&month_zero).unwrap_err()), ["card.exp_month"]);
        let long_cvc = wire::Card { cvc: "12345".into(), ..wire_card("4242424242424242") };
        assert_eq!(fields(Card::parse(&long_cvc).unwrap_err()), ["card.cvc"]);
    }

    #[test]
    fn a_card_is_good_through_its_expiry_month() {
        let now = time::macros::datetime!(2027-03-15 12:00 UTC);
        let card = |month, year| {
            Card::parse(&wire::Card { exp_month: month, exp_year: year, ..wire_card("4242424242424242") }).unwrap()
        };
        assert!(!card(3, 2027).is_expired_at(now));
        assert!(!card(1, 2028).is_expired_at(now));
        assert!(card(2, 2027).is_expired_at(now));
        assert!(card(12, 2026).is_expired_at(now));
    }

    #[test]
    fn a_charge_request_is_checked_whole() {
        let request = wire::ChargeRequest {
            order_id: "not-a-uuid".into(),
            amount: Some(eventhive_proto::common::Money { amount_minor: 0, currency: "EURO".into() }),
            card: Some(wire_card("4242424242424241")),
            idempotency_key: "k".repeat(201),
        };
        assert_eq!(
            fields(ChargeInput::parse(&request).unwrap_err()),
            ["order_id", "amount.amount_minor", "amount.currency", "card.number", "idempotency_key"]
        );
        let missing = wire::ChargeRequest { order_id: OrderId::new().to_string(), ..Default::default() };
        assert_eq!(fields(ChargeInput::parse(&missing).unwrap_err()), ["amount", "card"]);
    }

    #[test]
    fn a_good_charge_request_parses_with_an_optional_key() {
        let order_id = OrderId::new();
        let request = wire::ChargeRequest {
            order_id: order_id.to_string().to_uppercase(),
            amount: Some(eventhive_proto::common::Money { amount_minor: 2500, currency: "EUR".into() }),
            card: Some(wire_card("4242424242424242")),
            idempotency_key: "  ".into(),
        };
        let input = ChargeInput::parse(&request).unwrap();
        assert_eq!(input.order_id, order_id, "upper-case spelling is the same order");
        assert_eq!(input.amount.amount_minor, 2500);
        assert_eq!(input.idempotency_key, None);
    }
}
