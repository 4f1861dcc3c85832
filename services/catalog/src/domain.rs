//! Catalog's domain: an event's lifecycle, who may do what to it, and the parsed fields of
//! events and ticket types.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::{Currency, iso};
use eventhive_platform::FieldError;
use eventhive_proto::common::Actor;
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// draft → on_sale → cancelled (a draft can be cancelled too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Being prepared; only the organization's members see it.
    Draft,
    /// Public and purchasable.
    OnSale,
    /// Called off; public so buyers can see what happened, and final.
    Cancelled,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::OnSale => "on_sale",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn from_stored(text: &str) -> Self {
        match text {
            "on_sale" => Self::OnSale,
            "cancelled" => Self::Cancelled,
            _ => Self::Draft,
        }
    }

    pub fn is_public(self) -> bool {
        !matches!(self, Self::Draft)
    }
}

/// What the actor may do with the events of one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not a member: sees public events only.
    Outsider,
    /// Staff: sees drafts, changes nothing.
    Member,
    /// Owner or admin: manages events.
    Manager,
}

impl Access {
    pub fn of(actor: Option<&Actor>, organization_id: &str) -> Self {
        let role = actor
            .into_iter()
            .flat_map(|a| a.memberships.iter())
            .find(|m| m.organization_id == organization_id)
            .map(|m| m.role.as_str());
        match role {
            Some("owner" | "admin") => Self::Manager,
            Some(_) => Self::Member,
            None => Self::Outsider,
        }
    }

    pub fn can_see(self, status: EventStatus) -> bool {
        status.is_public() || self != Self::Outsider
    }
}

/// Collects field errors so that one answer lists every invalid field.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// Trimmed text of `min..=max` characters without control characters (newlines allowed when
/// `multiline`).
pub fn text(field: &str, raw: &str, min: usize, max: usize, multiline: bool) -> Result<String, FieldError> {
    let value = raw.trim();
    let length = value.chars().count();
    if length < min || length > max {
        return Err(FieldError::new(field, format!("must be {min} to {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t'))) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

pub fn country(field: &str, raw: &str) -> Result<String, FieldError> {
    let code = raw.trim().to_ascii_uppercase();
    if iso::is_country(&code) {
        Ok(code)
    } else {
        Err(FieldError::new(field, "must be an ISO 3166-1 alpha-2 country code such as NL"))
    }
}

pub fn currency(field: &str, raw: &str) -> Result<String, FieldError> {
    Currency::parse(raw.trim()).map(|c| c.to_string()).map_err(|e| FieldError::new(field, e.to_string()))
}

/// An RFC 3339 time, as Unix milliseconds.
pub fn instant(field: &str, raw: &str) -> Result<i64, FieldError> {
    let at = OffsetDateTime::parse(raw.trim(), &Rfc3339)
        .map_err(|_| FieldError::new(field, "must be an RFC 3339 time such as 2027-06-01T19:30:00Z"))?;
    Ok(eventhive_platform::storage::to_ms(at))
}

pub fn in_range(field: &str, value: i64, min: i64, max: i64) -> Result<i64, FieldError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(field, format!("must be between {min} and {max}")))
    }
}

/// Where a search page ends: the keyset of the last event shown. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageToken {
    #[serde(rename = "s")]
    pub starts_at: i64,
    #[serde(rename = "i")]
    pub id: String,
}

impl PageToken {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("page_token", "is not a page token this API gave out");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let token: Self = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        uuid::Uuid::parse_str(&token.id).map_err(|_| invalid())?;
        Ok(token)
    }
}

/// A `LIKE` pattern matching `needle` anywhere, with the wildcards in it taken literally.
pub fn contains_pattern(needle: &str) -> String {
    let escaped = needle.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventhive_proto::common::Membership;

    fn actor(role: &str) -> Actor {
        Actor {
            user_id: "u".into(),
            memberships: vec![Membership { organization_id: "org".into(), role: role.into() }],
        }
    }

    #[test]
    fn access_follows_the_role_in_that_organization() {
        assert_eq!(Access::of(Some(&actor("owner")), "org"), Access::Manager);
        assert_eq!(Access::of(Some(&actor("admin")), "org"), Access::Manager);
        assert_eq!(Access::of(Some(&actor("staff")), "org"), Access::Member);
        assert_eq!(Access::of(Some(&actor("owner")), "other"), Access::Outsider);
        assert_eq!(Access::of(None, "org"), Access::Outsider);
        assert!(!Access::Outsider.can_see(EventStatus::Draft));
        assert!(Access::Outsider.can_see(EventStatus::OnSale));
        assert!(Access::Member.can_see(EventStatus::Draft));
    }

    #[test]
    fn page_tokens_round_trip_and_reject_forgeries() {
        let token = PageToken { starts_at: 42, id: uuid::Uuid::now_v7().to_string() };
        assert_eq!(PageToken::decode(&token.encode()).unwrap(), token);
        assert!(PageToken::decode("garbage!").is_err());
        assert!(PageToken::decode(&URL_SAFE_NO_PAD.encode(b"{\"s\":1,\"i\":\"x\"}")).is_err());
    }

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn fields_are_checked() {
        assert_eq!(country("c", "nl").unwrap(), "NL");
        assert!(country("c", "XX").is_err());
        assert!(currency("c", "EUR").is_ok());
        assert!(currency("c", "EURO").is_err());
        assert!(instant("t", "2027-06-01T19:30:00Z").is_ok());
        assert!(instant("t", "tomorrow").is_err());
        assert!(text("t", "  ", 1, 10, false).is_err());
        assert!(text("t", "a\u{0}b", 1, 10, false).is_err());
        assert_eq!(text("t", " ok ", 1, 10, false).unwrap(), "ok");
    }
}
