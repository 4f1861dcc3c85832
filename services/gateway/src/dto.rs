//! The public API's wire types: what clients send and get, as API.md describes them. They are
//! separate from the services' protobuf messages, so that the public contract changes only on
//! purpose.

use eventhive_proto::{catalog, common, identity, ticketing};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterBody {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 10 to 128 characters.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// 1 to 100 characters.
    #[schema(example = "Ada Lovelace")]
    pub display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: String,
    pub email: String,
    pub display_name: String,
}

impl From<identity::User> for UserDto {
    fn from(user: identity::User) -> Self {
        Self { id: user.id, email: user.email, display_name: user.display_name }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenDto {
    /// A JWT (EdDSA) to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Works once: each refresh returns a new one.
    pub refresh_token: String,
}

impl From<identity::TokenPair> for TokenDto {
    fn from(pair: identity::TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: pair.token_type,
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipDto {
    pub id: String,
    pub name: String,
    /// `owner`, `admin` or `staff`.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeDto {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub organizations: Vec<MembershipDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrganizationBody {
    /// 1 to 200 characters.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationDto {
    pub id: String,
    pub name: String,
}

/// A role that can be granted; `owner` belongs to whoever created the organization.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantableRole {
    Admin,
    Staff,
}

impl GrantableRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMemberBody {
    /// The email of a registered user.
    pub email: String,
    pub role: GrantableRole,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    pub organization_id: String,
    pub user_id: String,
    pub email: String,
    pub role: String,
}

impl From<identity::Member> for MemberDto {
    fn from(member: identity::Member) -> Self {
        Self {
            organization_id: member.organization_id,
            user_id: member.user_id,
            email: member.email,
            role: member.role,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MoneyDto {
    /// Integer minor units (cents for EUR).
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
}

impl From<common::Money> for MoneyDto {
    fn from(money: common::Money) -> Self {
        Self { amount_minor: money.amount_minor, currency: money.currency }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VenueDto {
    pub name: String,
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[schema(example = "NL")]
    pub country: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateEventBody {
    pub organization_id: String,
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 10,000 characters.
    #[serde(default)]
    pub description: String,
    pub venue: VenueDto,
    /// RFC 3339.
    #[schema(format = DateTime, example = "2027-06-01T19:30:00Z")]
    pub starts_at: String,
    /// RFC 3339, after `starts_at`.
    #[schema(format = DateTime, example = "2027-06-01T23:00:00Z")]
    pub ends_at: String,
    /// ISO 4217 currency of every price of the event.
    #[schema(example = "EUR")]
    pub currency: String,
    /// 1 to 100, default 10.
    pub max_tickets_per_order: Option<i64>,
    /// Tickets one buyer may hold across all their orders for this event (against scalpers);
    /// default 10.
    pub max_tickets_per_buyer: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct VenuePatch {
    pub name: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
}

/// Only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateEventBody {
    pub title: Option<String>,
    pub description: Option<String>,
    pub venue: Option<VenuePatch>,
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    pub currency: Option<String>,
    pub max_tickets_per_order: Option<i64>,
    pub max_tickets_per_buyer: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CancelEventBody {
    /// Told to ticket holders; 1 to 500 characters.
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTicketTypeBody {
    pub name: String,
    /// In minor units of the event's currency.
    pub price_minor: i64,
    pub capacity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketTypeDto {
    pub id: String,
    pub name: String,
    pub price: MoneyDto,
    pub capacity: i64,
    /// Tickets still for sale.
    pub available: i64,
}

impl From<catalog::TicketType> for TicketTypeDto {
    fn from(t: catalog::TicketType) -> Self {
        let price = t.price.map(MoneyDto::from).unwrap_or(MoneyDto { amount_minor: 0, currency: String::new() });
        // Nothing can be sold before ticketing exists, so all of the capacity is available.
        Self { id: t.id, name: t.name, price, capacity: t.capacity, available: t.capacity }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatusDto {
    Draft,
    OnSale,
    Cancelled,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDto {
    pub id: String,
    pub organization_id: String,
    pub title: String,
    pub description: String,
    pub venue: VenueDto,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub ends_at: String,
    pub currency: String,
    pub max_tickets_per_order: i64,
    pub max_tickets_per_buyer: i64,
    pub status: EventStatusDto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    pub ticket_types: Vec<TicketTypeDto>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<catalog::Event> for EventDto {
    fn from(e: catalog::Event) -> Self {
        let venue = e.venue.unwrap_or_default();
        Self {
            id: e.id,
            organization_id: e.organization_id,
            title: e.title,
            description: e.description,
            venue: VenueDto { name: venue.name, city: venue.city, country: venue.country },
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            currency: e.currency,
            max_tickets_per_order: e.max_tickets_per_order,
            max_tickets_per_buyer: e.max_tickets_per_buyer,
            status: match e.status.as_str() {
                "on_sale" => EventStatusDto::OnSale,
                "cancelled" => EventStatusDto::Cancelled,
                _ => EventStatusDto::Draft,
            },
            cancel_reason: e.cancel_reason,
            ticket_types: e.ticket_types.into_iter().map(TicketTypeDto::from).collect(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventDto>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Case-insensitive text in title or description.
    pub q: Option<String>,
    /// The venue's city, case-insensitive.
    pub city: Option<String>,
    /// Events starting at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Events starting at or before this time (RFC 3339).
    pub to: Option<String>,
    /// 1 to 100, default 20.
    pub page_size: Option<i64>,
    /// From the previous page's `next_page_token`.
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrderItemBody {
    pub ticket_type_id: String,
    /// At least 1.
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrderBody {
    pub event_id: String,
    pub items: Vec<OrderItemBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CardBody {
    /// Digits only. Test cards: 4242424242424242 succeeds, 4000000000000002 is declined,
    /// 4000000000009995 is declined for insufficient funds, 4000000000000119 fails once
    /// transiently (EventHive retries it).
    #[schema(example = "4242424242424242")]
    pub number: String,
    #[schema(example = 12)]
    pub exp_month: i64,
    #[schema(example = 2030)]
    pub exp_year: i64,
    /// 3 or 4 digits.
    #[schema(example = "123")]
    pub cvc: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PaymentBody {
    pub card: CardBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemDto {
    pub ticket_type_id: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: MoneyDto,
    pub subtotal: MoneyDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketDto {
    pub id: String,
    pub order_id: String,
    pub event_id: String,
    pub ticket_type_id: String,
    pub ticket_type_name: String,
    /// Signed; door staff verify it offline with the event's check-in key.
    pub code: String,
    /// `valid`, `checked_in` or `void`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub checked_in_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<ticketing::Ticket> for TicketDto {
    fn from(t: ticketing::Ticket) -> Self {
        Self {
            id: t.id,
            order_id: t.order_id,
            event_id: t.event_id,
            ticket_type_id: t.ticket_type_id,
            ticket_type_name: t.ticket_type_name,
            code: t.code,
            status: t.status,
            checked_in_at: t.checked_in_at,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDto {
    pub id: String,
    pub event_id: String,
    /// `pending_payment`, `paid`, `expired`, `cancelled` or `refunded`.
    pub status: String,
    /// Until when the tickets are held for payment.
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub items: Vec<OrderItemDto>,
    pub total: MoneyDto,
    /// Issued when the order is paid.
    pub tickets: Vec<TicketDto>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub paid_at: Option<String>,
}

fn money_or_zero(money: Option<common::Money>) -> MoneyDto {
    money.map(MoneyDto::from).unwrap_or(MoneyDto { amount_minor: 0, currency: String::new() })
}

impl From<ticketing::Order> for OrderDto {
    fn from(o: ticketing::Order) -> Self {
        Self {
            id: o.id,
            event_id: o.event_id,
            status: o.status,
            expires_at: o.expires_at,
            items: o
                .items
                .into_iter()
                .map(|i| OrderItemDto {
                    ticket_type_id: i.ticket_type_id,
                    name: i.name,
                    quantity: i.quantity,
                    unit_price: money_or_zero(i.unit_price),
                    subtotal: money_or_zero(i.subtotal),
                })
                .collect(),
            total: money_or_zero(o.total),
            tickets: o.tickets.into_iter().map(TicketDto::from).collect(),
            created_at: o.created_at,
            paid_at: o.paid_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderDto>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketPage {
    pub items: Vec<TicketDto>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 100, default 20.
    pub page_size: Option<i64>,
    /// From the previous page's `next_page_token`.
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckinBody {
    /// The ticket's code, as scanned.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinDto {
    pub ticket_id: String,
    #[schema(example = "checked_in")]
    pub status: String,
    #[schema(format = DateTime)]
    pub checked_in_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinKeyDto {
    pub event_id: String,
    #[schema(example = "Ed25519")]
    pub algorithm: String,
    /// Raw 32-byte public key, base64url without padding.
    pub public_key: String,
    pub code_format: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketTypeStatsDto {
    pub ticket_type_id: String,
    pub name: String,
    pub capacity: i64,
    pub sold: i64,
    pub held: i64,
    pub available: i64,
    pub revenue: MoneyDto,
    pub checkins: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteSalesDto {
    /// Start of the minute.
    #[schema(format = DateTime)]
    pub minute: String,
    pub tickets: i64,
    pub revenue: MoneyDto,
}

/// An event's sales figures; `tickets_sold + tickets_held + tickets_available` is the capacity.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventAnalyticsDto {
    pub event_id: String,
    pub tickets_sold: i64,
    pub tickets_held: i64,
    pub tickets_available: i64,
    pub revenue: MoneyDto,
    pub orders_paid: i64,
    pub checkins: i64,
    pub by_ticket_type: Vec<TicketTypeStatsDto>,
    pub sales_per_minute: Vec<MinuteSalesDto>,
    /// When the figures last changed.
    #[schema(format = DateTime)]
    pub as_of: String,
}

impl From<eventhive_proto::analytics::EventAnalytics> for EventAnalyticsDto {
    fn from(a: eventhive_proto::analytics::EventAnalytics) -> Self {
        Self {
            event_id: a.event_id,
            tickets_sold: a.tickets_sold,
            tickets_held: a.tickets_held,
            tickets_available: a.tickets_available,
            revenue: money_or_zero(a.revenue),
            orders_paid: a.orders_paid,
            checkins: a.checkins,
            by_ticket_type: a
                .by_ticket_type
                .into_iter()
                .map(|t| TicketTypeStatsDto {
                    ticket_type_id: t.ticket_type_id,
                    name: t.name,
                    capacity: t.capacity,
                    sold: t.sold,
                    held: t.held,
                    available: t.available,
                    revenue: money_or_zero(t.revenue),
                    checkins: t.checkins,
                })
                .collect(),
            sales_per_minute: a
                .sales_per_minute
                .into_iter()
                .map(|m| MinuteSalesDto { minute: m.minute, tickets: m.tickets, revenue: money_or_zero(m.revenue) })
                .collect(),
            as_of: a.as_of,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DevMailAttachmentDto {
    pub filename: String,
    pub content_type: String,
    pub content_id: String,
    pub size: i64,
}

/// A message the dev inbox kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevMailDto {
    pub id: String,
    pub to: String,
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    pub html: String,
    pub kind: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub attachments: Vec<DevMailAttachmentDto>,
}

impl From<eventhive_proto::notifications::DevMail> for DevMailDto {
    fn from(m: eventhive_proto::notifications::DevMail) -> Self {
        Self {
            id: m.id,
            to: m.to,
            subject: m.subject,
            body: m.body,
            html: m.html,
            kind: m.kind,
            created_at: m.created_at,
            attachments: m
                .attachments
                .into_iter()
                .map(|a| DevMailAttachmentDto {
                    filename: a.filename,
                    content_type: a.content_type,
                    content_id: a.content_id,
                    size: a.size,
                })
                .collect(),
        }
    }
}
