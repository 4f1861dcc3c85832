//! Tickets: issued once per paid admission, each with a stable code that door staff can verify
//! offline. A code is `base64url(payload ‖ signature)`: the payload is a version byte, the
//! event id and the ticket id (16 bytes each), signed with the event's Ed25519 key.

use anyhow::Context;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::{EventId, TicketId, UserId, events::TicketCheckedIn};
use eventhive_platform::{
    Secrets, outbox,
    storage::{from_ms, ms_to_rfc3339, now_ms},
};
use eventhive_proto::{
    common::Actor,
    ticketing::{CheckInResponse, CheckinKey, ListTicketsResponse},
};
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use sqlx::AnyConnection;

use crate::{
    SERVICE,
    engine::Engine,
    error::TicketingError,
    paging::Page,
    repository::{
        catalog::{self, EventRecord},
        orders::{self, ItemRecord, OrderRecord},
        tickets::{self, NewTicket, TicketRecord},
    },
    saga::OrderState,
    views,
};

type Result<T> = std::result::Result<T, TicketingError>;

const CODE_VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 16 + 16;
const SIGNATURE_LEN: usize = 64;

/// How a code is built, for whoever verifies codes offline.
const CODE_FORMAT: &str = "base64url(payload || signature), no padding; payload = 0x01 || event id (16 bytes) || \
    ticket id (16 bytes); signature = Ed25519 over the payload with the event's key";

/// The code of a ticket, signed with the event's key (PKCS#8, base64url).
/// What the events' private signing keys are sealed for, in ticketing's database.
pub(crate) const EVENT_KEY_PURPOSE: &str = "event-signing-key";

pub(crate) fn sign(signing_key_pkcs8: &str, event_id: EventId, ticket_id: TicketId) -> anyhow::Result<String> {
    let der = URL_SAFE_NO_PAD.decode(signing_key_pkcs8).context("event signing key")?;
    let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| anyhow::anyhow!("event signing key is invalid"))?;
    let mut bytes = Vec::with_capacity(PAYLOAD_LEN + SIGNATURE_LEN);
    bytes.push(CODE_VERSION);
    bytes.extend_from_slice(event_id.as_uuid().as_bytes());
    bytes.extend_from_slice(ticket_id.as_uuid().as_bytes());
    let signature = pair.sign(&bytes);
    bytes.extend_from_slice(signature.as_ref());
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The event and ticket a code names, if it is genuine for the key.
pub(crate) fn verify(public_key: &str, code: &str) -> Option<(EventId, TicketId)> {
    let bytes = URL_SAFE_NO_PAD.decode(code.trim()).ok()?;
    if bytes.len() != PAYLOAD_LEN + SIGNATURE_LEN || bytes[0] != CODE_VERSION {
        return None;
    }
    let key = URL_SAFE_NO_PAD.decode(public_key).ok()?;
    let (payload, signature) = bytes.split_at(PAYLOAD_LEN);
    UnparsedPublicKey::new(&ED25519, key).verify(payload, signature).ok()?;
    let event = uuid::Uuid::from_slice(&payload[1..17]).ok()?;
    let ticket = uuid::Uuid::from_slice(&payload[17..33]).ok()?;
    Some((EventId::from_uuid(event), TicketId::from_uuid(ticket)))
}

/// Issues the tickets of a paid order with these `items`, once: positions are unique per
/// order, so a repeat inserts nothing and returns what exists.
pub(crate) async fn issue(
    tx: &mut AnyConnection,
    order: &OrderRecord,
    items: &[ItemRecord],
    now: i64,
    secrets: &Secrets,
) -> anyhow::Result<Vec<TicketRecord>> {
    let event = catalog::event(tx, order.event_id).await?.context("the order's event is unknown")?;
    let private_key = secrets.open(EVENT_KEY_PURPOSE, &event.signing_key_pkcs8)?.plaintext;
    let private_key = String::from_utf8(private_key).context("the event's signing key is not text")?;
    let mut position = 0i64;
    for item in items {
        for _ in 0..item.quantity {
            let id = TicketId::new();
            let code = sign(&private_key, event.id, id)?;
            let ticket = NewTicket {
                id,
                order_id: order.id,
                event_id: event.id,
                ticket_type_id: item.ticket_type_id,
                buyer_id: order.buyer_id,
                position,
                code: &code,
                now,
            };
            tickets::insert_once(tx, &ticket).await?;
            position += 1;
        }
    }
    tickets::of_order(tx, order.id).await
}

/// Whether the actor works the door of the event's organization (owner, admin or staff).
fn works_door(actor: Option<&Actor>, event: &EventRecord) -> bool {
    let organization_id = event.organization_id.to_string();
    actor.is_some_and(|actor| {
        actor
            .memberships
            .iter()
            .any(|m| m.organization_id == organization_id && matches!(m.role.as_str(), "owner" | "admin" | "staff"))
    })
}

impl Engine {
    /// The event, read from catalog if it was not heard of yet: unknown is 404.
    pub(crate) async fn known_event(&self, event_id: EventId) -> Result<EventRecord> {
        let mut conn = self.db.pool().acquire().await?;
        let mut event = catalog::event(&mut conn, event_id).await?;
        drop(conn);
        if event.is_none() && self.catalog.fetch(event_id, None).await.unwrap_or(false) {
            let mut conn = self.db.pool().acquire().await?;
            event = catalog::event(&mut conn, event_id).await?;
        }
        event.ok_or_else(|| TicketingError::NotFound("no such event".into()))
    }

    /// The event as door staff may act on it: unknown is 404, not theirs is 403.
    async fn door_event(&self, actor: Option<&Actor>, event_id: EventId) -> Result<EventRecord> {
        let event = self.known_event(event_id).await?;
        if !works_door(actor, &event) {
            return Err(TicketingError::Forbidden(
                "only the organization's owner, admins and staff check tickets in".into(),
            ));
        }
        Ok(event)
    }

    #[tracing::instrument(skip_all, fields(%event_id))]
    pub(crate) async fn check_in(
        &self,
        actor: Option<&Actor>,
        event_id: EventId,
        code: &str,
    ) -> Result<CheckInResponse> {
        let event = self.door_event(actor, event_id).await?;
        let not_valid = || TicketingError::NotFound("not a valid ticket of this event".into());
        let (code_event, ticket_id) = verify(&event.public_key, code).ok_or_else(not_valid)?;
        if code_event != event.id {
            return Err(not_valid());
        }
        let now = now_ms();
        let mut tx = self.db.pool().begin().await?;
        let ticket = tickets::of_event(&mut tx, ticket_id, event.id).await?.ok_or_else(not_valid)?;
        match ticket.status.as_str() {
            // Not a valid ticket any more (API.md: 404), but say why, for the door.
            "void" => {
                return Err(TicketingError::NotFound(
                    "this ticket is void: its order was refunded or cancelled".into(),
                ));
            }
            "checked_in" => {
                return Err(TicketingError::AlreadyCheckedIn(ms_to_rfc3339(ticket.checked_in_at.unwrap_or_default())));
            }
            _ => {}
        }
        // Under the order's lock, which a buyer's refund takes too: a ticket is let in only
        // while its order is paid, and a refund starts only while no ticket of it was let in.
        let order = orders::find_for_update(&self.db, &mut tx, ticket.order_id).await?;
        if order.is_none_or(|order| order.state != OrderState::Paid) {
            return Err(TicketingError::NotFound("this ticket is void: its order is being refunded".into()));
        }
        if !tickets::check_in(&mut tx, ticket.id, now).await? {
            // Another scanner won the race by a hair.
            tx.rollback().await?;
            let mut conn = self.db.pool().acquire().await?;
            let at = tickets::checked_in_at(&mut conn, ticket.id).await?;
            return Err(TicketingError::AlreadyCheckedIn(ms_to_rfc3339(at.unwrap_or(now))));
        }
        let checked_in = TicketCheckedIn {
            ticket_id,
            event_id: code_event,
            ticket_type_id: ticket.ticket_type_id,
            checked_in_at: from_ms(now),
        };
        outbox::enqueue(&mut tx, SERVICE, &checked_in, None).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(CheckInResponse {
            ticket_id: ticket.id.to_string(),
            status: "checked_in".into(),
            checked_in_at: ms_to_rfc3339(now),
        })
    }

    pub(crate) async fn checkin_key(&self, actor: Option<&Actor>, event_id: EventId) -> Result<CheckinKey> {
        let event = self.door_event(actor, event_id).await?;
        Ok(CheckinKey {
            event_id: event.id.to_string(),
            algorithm: "Ed25519".into(),
            public_key: event.public_key,
            code_format: CODE_FORMAT.into(),
        })
    }

    /// The buyer's tickets, newest first.
    pub(crate) async fn list_tickets(&self, buyer_id: UserId, page: Page) -> Result<ListTicketsResponse> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = tickets::page_of_buyer(&mut conn, buyer_id, &page.after, page.probe()).await?;
        let (rows, next_page_token) = page.split(rows, |t| t.id.to_string());
        Ok(ListTicketsResponse { items: rows.iter().map(views::ticket).collect(), next_page_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::{rand::SystemRandom, signature::KeyPair};

    fn key_pair() -> (String, String) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        (URL_SAFE_NO_PAD.encode(pkcs8.as_ref()), URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()))
    }

    #[test]
    fn a_code_verifies_with_its_event_key_only() {
        let (private, public) = key_pair();
        let (_, other_public) = key_pair();
        let (event, ticket) = (EventId::new(), TicketId::new());
        let code = sign(&private, event, ticket).unwrap();
        assert_eq!(verify(&public, &code), Some((event, ticket)));
        assert_eq!(verify(&other_public, &code), None, "another event's key");
        assert!(code.len() < 140, "compact enough for a QR code: {}", code.len());
    }

    #[test]
    fn a_tampered_code_does_not_verify() {
        let (private, public) = key_pair();
        let code = sign(&private, EventId::new(), TicketId::new()).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&code).unwrap();
        bytes[20] ^= 1;
        assert_eq!(verify(&public, &URL_SAFE_NO_PAD.encode(&bytes)), None);
        assert_eq!(verify(&public, "not a code"), None);
        assert_eq!(verify(&public, ""), None);
    }
}
