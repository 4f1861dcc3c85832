//! Catalog's domain: an event's lifecycle, who may do what to it, and the parsed fields of
//! events, ticket types and searches. Nothing here touches the database.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::{Currency, iso};
use eventhive_platform::FieldError;
use eventhive_proto::{
    catalog::{
        AddTicketTypeRequest, CreateEventRequest, ListOrganizationEventsRequest, SearchEventsRequest,
        UpdateEventRequest, UpdateTicketTypeRequest,
    },
    common::Actor,
};
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

    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// Bounds of what an organizer may set.
pub const MAX_TICKETS_PER_ORDER: i64 = 100;
pub const MAX_TICKETS_PER_BUYER: i64 = 1_000;
const DEFAULT_TICKETS_PER_ORDER: i64 = 10;
const DEFAULT_TICKETS_PER_BUYER: i64 = 10;
const MAX_CAPACITY: i64 = 1_000_000;
const MAX_PRICE_MINOR: i64 = 100_000_000;
pub const MAX_PAGE_SIZE: i64 = 100;
pub const DEFAULT_PAGE_SIZE: i64 = 20;

/// An event as its organizer first describes it, every field checked. It starts as a draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub title: String,
    pub description: String,
    pub venue_name: String,
    pub venue_city: String,
    pub venue_country: String,
    /// Unix milliseconds, like every time catalog stores.
    pub starts_at: i64,
    pub ends_at: i64,
    pub currency: String,
    pub max_tickets_per_order: i64,
    pub max_tickets_per_buyer: i64,
}

impl TryFrom<&CreateEventRequest> for NewEvent {
    /// Every invalid field, in the order of the form.
    type Error = Vec<FieldError>;

    fn try_from(request: &CreateEventRequest) -> Result<Self, Self::Error> {
        let mut checks = Checks::default();
        let title = checks.check(title(&request.title));
        let description = checks.check(description(&request.description));
        let venue = request.venue.clone().unwrap_or_default();
        let venue_name = checks.check(venue_name(&venue.name));
        let venue_city = checks.check(venue_city(&venue.city));
        let venue_country = checks.check(venue_country(&venue.country));
        let starts_at = checks.check(instant("starts_at", &request.starts_at));
        let ends_at = checks.check(instant("ends_at", &request.ends_at));
        if let (Some(start), Some(end)) = (starts_at, ends_at) {
            checks.check(ends_after_start(start, end));
        }
        let currency = checks.check(currency("currency", &request.currency));
        let per_order =
            checks.check(max_tickets_per_order(request.max_tickets_per_order.unwrap_or(DEFAULT_TICKETS_PER_ORDER)));
        let per_buyer = checks.check(max_tickets_per_buyer(
            request.max_tickets_per_buyer.unwrap_or(DEFAULT_TICKETS_PER_BUYER.max(per_order.unwrap_or(1))),
        ));
        checks.finish()?;
        // Every check passed, so every field is there.
        let (
            Some(title),
            Some(description),
            Some(venue_name),
            Some(venue_city),
            Some(venue_country),
            Some(starts_at),
            Some(ends_at),
            Some(currency),
            Some(max_tickets_per_order),
            Some(max_tickets_per_buyer),
        ) = (
            title,
            description,
            venue_name,
            venue_city,
            venue_country,
            starts_at,
            ends_at,
            currency,
            per_order,
            per_buyer,
        )
        else {
            return Err(vec![]);
        };
        Ok(Self {
            title,
            description,
            venue_name,
            venue_city,
            venue_country,
            starts_at,
            ends_at,
            currency,
            max_tickets_per_order,
            max_tickets_per_buyer,
        })
    }
}

/// The changes an organizer asks for: a field left out stays as it is, a field sent is parsed
/// here, rightly or not. Whether the parsed values fit the stored event (times in order, the
/// currency of an event on sale) is for the event's update to say.
#[derive(Debug, Clone)]
pub struct EventPatch {
    pub title: Option<Result<String, FieldError>>,
    pub description: Option<Result<String, FieldError>>,
    pub venue_name: Option<Result<String, FieldError>>,
    pub venue_city: Option<Result<String, FieldError>>,
    pub venue_country: Option<Result<String, FieldError>>,
    pub starts_at: Option<Result<i64, FieldError>>,
    pub ends_at: Option<Result<i64, FieldError>>,
    pub currency: Option<Result<String, FieldError>>,
    pub max_tickets_per_order: Option<Result<i64, FieldError>>,
    pub max_tickets_per_buyer: Option<Result<i64, FieldError>>,
}

impl From<&UpdateEventRequest> for EventPatch {
    fn from(request: &UpdateEventRequest) -> Self {
        Self {
            title: request.title.as_deref().map(title),
            description: request.description.as_deref().map(description),
            venue_name: request.venue_name.as_deref().map(venue_name),
            venue_city: request.venue_city.as_deref().map(venue_city),
            venue_country: request.venue_country.as_deref().map(venue_country),
            starts_at: request.starts_at.as_deref().map(|v| instant("starts_at", v)),
            ends_at: request.ends_at.as_deref().map(|v| instant("ends_at", v)),
            currency: request.currency.as_deref().map(|v| currency("currency", v)),
            max_tickets_per_order: request.max_tickets_per_order.map(max_tickets_per_order),
            max_tickets_per_buyer: request.max_tickets_per_buyer.map(max_tickets_per_buyer),
        }
    }
}

/// A ticket type as the organizer describes it, every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicketType {
    pub name: String,
    pub price_minor: i64,
    pub capacity: i64,
}

impl TryFrom<&AddTicketTypeRequest> for NewTicketType {
    type Error = Vec<FieldError>;

    fn try_from(request: &AddTicketTypeRequest) -> Result<Self, Self::Error> {
        Self::validated(&request.name, request.price_minor, request.capacity)
    }
}

impl TryFrom<&UpdateTicketTypeRequest> for NewTicketType {
    type Error = Vec<FieldError>;

    fn try_from(request: &UpdateTicketTypeRequest) -> Result<Self, Self::Error> {
        Self::validated(&request.name, request.price_minor, request.capacity)
    }
}

impl NewTicketType {
    /// The same rules for a ticket type added and one changed.
    fn validated(name: &str, price_minor: i64, capacity: i64) -> Result<Self, Vec<FieldError>> {
        let mut checks = Checks::default();
        let name = checks.check(text("name", name, 1, 100, false));
        let price_minor = checks.check(in_range("price_minor", price_minor, 0, MAX_PRICE_MINOR));
        let capacity = checks.check(in_range("capacity", capacity, 1, MAX_CAPACITY));
        checks.finish()?;
        let (Some(name), Some(price_minor), Some(capacity)) = (name, price_minor, capacity) else {
            return Err(vec![]);
        };
        Ok(Self { name, price_minor, capacity })
    }
}

/// Why an event is called off, as its holders will read it.
pub fn cancel_reason(raw: &str) -> Result<String, FieldError> {
    text("reason", raw, 1, 500, true)
}

/// A public search: which on-sale events, and which page of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Lower-cased words to find in the title or description; empty for any.
    pub text: String,
    /// Lower-cased city; empty for any.
    pub city: String,
    /// Inclusive bounds on `starts_at`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// The end of the previous page.
    pub after: Option<PageToken>,
    pub page_size: i64,
}

impl TryFrom<&SearchEventsRequest> for SearchQuery {
    type Error = Vec<FieldError>;

    fn try_from(request: &SearchEventsRequest) -> Result<Self, Self::Error> {
        let mut checks = Checks::default();
        let page_size = checks.check(page_size(request.page_size)).unwrap_or(DEFAULT_PAGE_SIZE);
        let from = if request.from.is_empty() { None } else { checks.check(instant("from", &request.from)) };
        let to = if request.to.is_empty() { None } else { checks.check(instant("to", &request.to)) };
        let after =
            if request.page_token.is_empty() { None } else { checks.check(PageToken::decode(&request.page_token)) };
        checks.finish()?;
        Ok(Self {
            text: request.q.trim().to_lowercase(),
            city: request.city.trim().to_lowercase(),
            from,
            to,
            after,
            page_size,
        })
    }
}

/// A page of one organization's events, whatever their status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationQuery {
    pub organization_id: String,
    /// The end of the previous page.
    pub after: Option<PageToken>,
    pub page_size: i64,
}

impl TryFrom<&ListOrganizationEventsRequest> for OrganizationQuery {
    type Error = Vec<FieldError>;

    fn try_from(request: &ListOrganizationEventsRequest) -> Result<Self, Self::Error> {
        let mut checks = Checks::default();
        let page_size = checks.check(page_size(request.page_size)).unwrap_or(DEFAULT_PAGE_SIZE);
        let after =
            if request.page_token.is_empty() { None } else { checks.check(PageToken::decode(&request.page_token)) };
        checks.finish()?;
        Ok(Self { organization_id: request.organization_id.clone(), after, page_size })
    }
}

/// A page size asked for; 0 (not given) is the default.
fn page_size(requested: i64) -> Result<i64, FieldError> {
    in_range("page_size", if requested == 0 { DEFAULT_PAGE_SIZE } else { requested }, 1, MAX_PAGE_SIZE)
}

// The bounds of each field an organizer sets, named once for creating and for changing.

pub fn title(raw: &str) -> Result<String, FieldError> {
    text("title", raw, 1, 200, false)
}

pub fn description(raw: &str) -> Result<String, FieldError> {
    text("description", raw, 0, 10_000, true)
}

pub fn venue_name(raw: &str) -> Result<String, FieldError> {
    text("venue.name", raw, 1, 200, false)
}

pub fn venue_city(raw: &str) -> Result<String, FieldError> {
    text("venue.city", raw, 1, 100, false)
}

pub fn venue_country(raw: &str) -> Result<String, FieldError> {
    country("venue.country", raw)
}

pub fn max_tickets_per_order(value: i64) -> Result<i64, FieldError> {
    in_range("max_tickets_per_order", value, 1, MAX_TICKETS_PER_ORDER)
}

pub fn max_tickets_per_buyer(value: i64) -> Result<i64, FieldError> {
    in_range("max_tickets_per_buyer", value, 1, MAX_TICKETS_PER_BUYER)
}

/// An event ends after it starts.
pub fn ends_after_start(starts_at: i64, ends_at: i64) -> Result<(), FieldError> {
    if ends_at <= starts_at { Err(FieldError::new("ends_at", "must be after starts_at")) } else { Ok(()) }
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
