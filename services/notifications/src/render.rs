//! Emails from templates: each kind has a plain-text and an HTML template under `templates/`
//! (compiled into the binary), rendered with MiniJinja, which escapes everything the HTML
//! templates show. The order confirmation carries one inline QR image per ticket.

use std::fmt;

use anyhow::Context;
use eventhive_domain::events::{IssuedTicket, OrderSummary};
use eventhive_platform::storage::from_ms;
use minijinja::{Environment, Value, context};
use serde::Serialize;
use time::{OffsetDateTime, macros::format_description};

use crate::{qr, store::EventInfo};

/// What an email is about; stored with each delivery and shown by the dev inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OrderConfirmation,
    EventChanged,
    EventCancelled,
    OrderRefunded,
    HoldExpired,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderConfirmation => "order_confirmation",
            Self::EventChanged => "event_changed",
            Self::EventCancelled => "event_cancelled",
            Self::OrderRefunded => "order_refunded",
            Self::HoldExpired => "hold_expired",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rendered email, before it has a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<Attachment>,
}

/// A file sent with an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    /// The HTML shows an inline part as `cid:<content_id>`.
    pub content_id: String,
    pub data: Vec<u8>,
}

/// The templates, compiled once.
pub struct Templates {
    env: Environment<'static>,
}

/// Every template, embedded so the binary needs no files next to it.
const TEMPLATES: [(&str, &str); 13] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("event_block.html", include_str!("../templates/event_block.html")),
    ("event_block.txt", include_str!("../templates/event_block.txt")),
    ("order_confirmation.txt", include_str!("../templates/order_confirmation.txt")),
    ("order_confirmation.html", include_str!("../templates/order_confirmation.html")),
    ("event_changed.txt", include_str!("../templates/event_changed.txt")),
    ("event_changed.html", include_str!("../templates/event_changed.html")),
    ("event_cancelled.txt", include_str!("../templates/event_cancelled.txt")),
    ("event_cancelled.html", include_str!("../templates/event_cancelled.html")),
    ("order_refunded.txt", include_str!("../templates/order_refunded.txt")),
    ("order_refunded.html", include_str!("../templates/order_refunded.html")),
    ("hold_expired.txt", include_str!("../templates/hold_expired.txt")),
    ("hold_expired.html", include_str!("../templates/hold_expired.html")),
];

/// An event as the templates show it.
#[derive(Debug, Serialize)]
struct EventView {
    title: String,
    when: String,
    venue: String,
}

impl EventView {
    fn of(event: &EventInfo) -> Self {
        let venue = [&event.venue_name, &event.venue_city, &event.venue_country]
            .into_iter()
            .filter(|part| !part.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        Self { title: event.title.clone(), when: when(event.starts_at, event.ends_at), venue }
    }
}

#[derive(Debug, Serialize)]
struct TicketView<'a> {
    type_name: &'a str,
    code: &'a str,
    content_id: String,
}

impl Templates {
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        // Block tags on lines of their own leave no blank lines behind in the text emails.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        for (name, source) in TEMPLATES {
            env.add_template(name, source).with_context(|| format!("template {name}"))?;
        }
        Ok(Self { env })
    }

    /// Renders `<name>.txt` and `<name>.html` with `context` (plus `subject`).
    fn render(
        &self,
        name: &str,
        subject: String,
        context: Value,
        attachments: Vec<Attachment>,
    ) -> anyhow::Result<Email> {
        let context = context! { subject => subject.clone(), ..context };
        let text = self
            .env
            .get_template(&format!("{name}.txt"))?
            .render(&context)
            .with_context(|| format!("rendering {name}.txt"))?;
        let html = self
            .env
            .get_template(&format!("{name}.html"))?
            .render(&context)
            .with_context(|| format!("rendering {name}.html"))?;
        Ok(Email { subject, text, html, attachments })
    }

    /// The tickets of a paid order, each with its code and a QR image of it.
    pub fn order_confirmation(
        &self,
        event: Option<&EventInfo>,
        order_id: &str,
        tickets: &[IssuedTicket],
    ) -> anyhow::Result<Email> {
        let mut views = Vec::with_capacity(tickets.len());
        let mut attachments = Vec::with_capacity(tickets.len());
        for (index, ticket) in tickets.iter().enumerate() {
            let content_id = format!("qr-{}@eventhive", ticket.ticket_id);
            attachments.push(Attachment {
                filename: format!("ticket-{}.png", index + 1),
                content_type: "image/png".into(),
                content_id: content_id.clone(),
                data: qr::png(&ticket.code)?,
            });
            views.push(TicketView { type_name: &ticket.ticket_type_name, code: &ticket.code, content_id });
        }
        let subject = match event {
            Some(event) => format!("Your tickets for {}", event.title),
            None => "Your tickets".to_owned(),
        };
        let context = context! { event => event.map(EventView::of), order_id, tickets => views };
        self.render(Kind::OrderConfirmation.as_str(), subject, context, attachments)
    }

    /// An event's time or venue changed; `previous` is how it was, when known.
    pub fn event_changed(
        &self,
        event: &EventInfo,
        previous: Option<&EventInfo>,
        time_changed: bool,
        venue_changed: bool,
    ) -> anyhow::Result<Email> {
        let what = match (time_changed, venue_changed) {
            (true, true) => "new time and venue",
            (true, false) => "new time",
            _ => "new venue",
        };
        let subject = format!("{}: {what}", event.title);
        let context = context! {
            event => EventView::of(event),
            previous => previous.map(EventView::of),
            time_changed,
            venue_changed,
        };
        self.render(Kind::EventChanged.as_str(), subject, context, Vec::new())
    }

    /// An event is cancelled and the holder's order is being refunded.
    pub fn event_cancelled(&self, event: &EventInfo, reason: Option<&str>) -> anyhow::Result<Email> {
        let subject = format!("{} is cancelled", event.title);
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        let context = context! { event => EventView::of(event), reason };
        self.render(Kind::EventCancelled.as_str(), subject, context, Vec::new())
    }

    /// A paid order was refunded (not because its event was cancelled).
    pub fn order_refunded(&self, event: Option<&EventInfo>, order: &OrderSummary) -> anyhow::Result<Email> {
        let subject = match event {
            Some(event) => format!("Your order for {} is refunded", event.title),
            None => "Your order is refunded".to_owned(),
        };
        let context = context! {
            event => event.map(EventView::of),
            order_id => order.order_id.to_string(),
            total => money(order.total_minor, &order.currency),
        };
        self.render(Kind::OrderRefunded.as_str(), subject, context, Vec::new())
    }

    /// An unpaid order's hold ran out.
    pub fn hold_expired(&self, event: Option<&EventInfo>, order: &OrderSummary) -> anyhow::Result<Email> {
        let subject = match event {
            Some(event) => format!("Your hold for {} has expired", event.title),
            None => "Your ticket hold has expired".to_owned(),
        };
        let context = context! { event => event.map(EventView::of), order_id => order.order_id.to_string() };
        self.render(Kind::HoldExpired.as_str(), subject, context, Vec::new())
    }
}

/// "Saturday 12 June 2027, 19:30 to 23:00 UTC", or both dates when the event spans days.
/// Times are UTC: the events carry no time zone of their venue.
fn when(starts_at: i64, ends_at: i64) -> String {
    let day = format_description!("[weekday repr:long] [day padding:none] [month repr:long] [year]");
    let clock = format_description!("[hour]:[minute]");
    let format = |at: OffsetDateTime, what| at.format(what).unwrap_or_default();
    let (starts, ends) = (from_ms(starts_at), from_ms(ends_at));
    if ends <= starts {
        format!("{}, {} UTC", format(starts, day), format(starts, clock))
    } else if starts.date() == ends.date() {
        format!("{}, {} to {} UTC", format(starts, day), format(starts, clock), format(ends, clock))
    } else {
        format!(
            "{}, {} to {}, {} UTC",
            format(starts, day),
            format(starts, clock),
            format(ends, day),
            format(ends, clock)
        )
    }
}

/// "45.00 EUR" from 4500 minor units.
fn money(amount_minor: i64, currency: &str) -> String {
    eventhive_domain::money::format_minor(amount_minor, currency)
}

#[cfg(test)]
mod tests {
    use eventhive_domain::{EventId, OrderId, TicketId, TicketTypeId, UserId, events::OrderLine};

    use super::*;

    fn concert() -> EventInfo {
        EventInfo {
            id: EventId::new().to_string(),
            title: "Rust & <Friends>".into(),
            venue_name: "Paradiso".into(),
            venue_city: "Amsterdam".into(),
            venue_country: "NL".into(),
            // 2027-06-12T19:30:00Z to 23:00.
            starts_at: 1_812_828_600_000,
            ends_at: 1_812_841_200_000,
            status: "on_sale".into(),
            revision: 1,
            cancel_reason: None,
        }
    }

    fn order() -> OrderSummary {
        OrderSummary {
            order_id: OrderId::new(),
            event_id: EventId::new(),
            buyer_id: UserId::new(),
            lines: vec![OrderLine { ticket_type_id: TicketTypeId::new(), quantity: 2, unit_price_minor: 2250 }],
            total_minor: 4500,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn a_confirmation_lists_every_ticket_with_a_qr_image_shown_by_the_html() {
        let tickets: Vec<IssuedTicket> = ["code-one", "code-two"]
            .into_iter()
            .map(|code| IssuedTicket {
                ticket_id: TicketId::new(),
                ticket_type_id: TicketTypeId::new(),
                ticket_type_name: "Early bird".into(),
                code: code.into(),
            })
            .collect();
        let email = Templates::new().unwrap().order_confirmation(Some(&concert()), "order-1", &tickets).unwrap();
        assert_eq!(email.subject, "Your tickets for Rust & <Friends>");
        for ticket in &tickets {
            assert!(email.text.contains(&ticket.code));
            assert!(email.html.contains(&ticket.code));
            assert!(email.html.contains(&format!("cid:qr-{}@eventhive", ticket.ticket_id)));
        }
        assert!(email.text.contains("Saturday 12 June 2027, 19:30 to 23:00 UTC"), "{}", email.text);
        assert!(email.text.contains("Paradiso, Amsterdam, NL"));
        assert!(email.text.contains("Rust & <Friends>"), "text is not escaped");
        assert!(email.html.contains("Rust &amp; &lt;Friends&gt;"), "HTML is escaped");
        assert!(!email.text.contains("\n\n\n"), "no runs of blank lines:\n{}", email.text);
        assert_eq!(email.attachments.len(), 2);
        assert!(email.attachments.iter().all(|a| a.content_type == "image/png" && a.data.starts_with(b"\x89PNG")));
    }

    #[test]
    fn a_change_says_what_changed_and_how_it_was() {
        let templates = Templates::new().unwrap();
        let before = concert();
        let after = EventInfo { starts_at: before.starts_at + 3_600_000, ..before.clone() };
        let email = templates.event_changed(&after, Some(&before), true, false).unwrap();
        assert_eq!(email.subject, "Rust & <Friends>: new time");
        assert!(email.text.contains("the time of Rust & <Friends> has changed"));
        assert!(email.text.contains("20:30"));
        assert!(email.text.contains("It was: Saturday 12 June 2027, 19:30"));
        assert!(!email.text.contains("It was at"));
        let moved = templates.event_changed(&after, None, false, true).unwrap();
        assert_eq!(moved.subject, "Rust & <Friends>: new venue");
    }

    #[test]
    fn cancellations_refunds_and_expiries_render() {
        let templates = Templates::new().unwrap();
        let cancelled = templates.event_cancelled(&concert(), Some("storm")).unwrap();
        assert!(cancelled.text.contains("The organizer says: storm"));
        assert!(cancelled.text.contains("being refunded"));
        let refunded = templates.order_refunded(Some(&concert()), &order()).unwrap();
        assert!(refunded.text.contains("45.00 EUR"), "{}", refunded.text);
        let expired = templates.hold_expired(None, &order()).unwrap();
        assert_eq!(expired.subject, "Your ticket hold has expired");
    }
}
