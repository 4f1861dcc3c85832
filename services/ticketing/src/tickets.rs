//! Tickets: issued once per paid admission, each with a stable code that door staff can verify
//! offline. A code is `base64url(payload ‖ signature)`: the payload is a version byte, the
//! event id and the ticket id (16 bytes each), signed with the event's Ed25519 key.

use anyhow::Context;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use eventhive_domain::{EventId, TicketId, TicketTypeId, events::TicketCheckedIn};
use eventhive_platform::{
    outbox,
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
    orders::{page, split_page},
    store::{self, EventRow, OrderRow, TICKET_SELECT, TicketRow},
};

type Result<T> = std::result::Result<T, TicketingError>;

const CODE_VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 16 + 16;
const SIGNATURE_LEN: usize = 64;

/// How a code is built, for whoever verifies codes offline.
pub const CODE_FORMAT: &str = "base64url(payload || signature), no padding; payload = 0x01 || event id (16 bytes) || \
    ticket id (16 bytes); signature = Ed25519 over the payload with the event's key";

/// The code of a ticket, signed with the event's key (PKCS#8, base64url).
pub fn sign(signing_key_pkcs8: &str, event_id: EventId, ticket_id: TicketId) -> anyhow::Result<String> {
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
pub fn verify(public_key: &str, code: &str) -> Option<(EventId, TicketId)> {
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

/// A ticket just issued.
pub struct Issued {
    pub ticket_id: TicketId,
    pub ticket_type_id: TicketTypeId,
    pub ticket_type_name: String,
    pub code: String,
}

/// Issues the tickets of a paid order, once: positions are unique per order, so a repeat
/// inserts nothing and returns what exists.
pub async fn issue(tx: &mut AnyConnection, order: &OrderRow, now: i64) -> anyhow::Result<Vec<Issued>> {
    let event = store::event(tx, &order.event_id).await?.context("the order's event is unknown")?;
    let event_id = EventId::parse(&event.id)?;
    let items = store::items(tx, &order.id).await?;
    let mut position = 0i64;
    for item in &items {
        for _ in 0..item.quantity {
            let ticket_id = TicketId::new();
            sqlx::query(
                "INSERT INTO tickets (id, order_id, event_id, ticket_type_id, buyer_id, position, code, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'valid', $8) ON CONFLICT (order_id, position) DO NOTHING",
            )
            .bind(ticket_id.to_string())
            .bind(&order.id)
            .bind(&event.id)
            .bind(&item.ticket_type_id)
            .bind(&order.buyer_id)
            .bind(position)
            .bind(sign(&event.signing_key_pkcs8, event_id, ticket_id)?)
            .bind(now)
            .execute(&mut *tx)
            .await
            .context("issuing a ticket")?;
            position += 1;
        }
    }
    let rows = store::tickets_of_order(tx, &order.id).await?;
    rows.into_iter()
        .map(|row| {
            Ok(Issued {
                ticket_id: TicketId::parse(&row.id)?,
                ticket_type_id: TicketTypeId::parse(&row.ticket_type_id)?,
                ticket_type_name: row.ticket_type_name,
                code: row.code,
            })
        })
        .collect()
}

/// Whether the actor works the door of the event's organization (owner, admin or staff).
fn works_door(actor: Option<&Actor>, event: &EventRow) -> bool {
    actor.is_some_and(|actor| {
        actor.memberships.iter().any(|m| {
            m.organization_id == event.organization_id && matches!(m.role.as_str(), "owner" | "admin" | "staff")
        })
    })
}

impl Engine {
    /// The event as door staff may act on it: unknown is 404, not theirs is 403.
    async fn door_event(&self, actor: Option<&Actor>, event_id: &str) -> Result<EventRow> {
        let not_found = || TicketingError::NotFound("no such event".into());
        if EventId::parse(event_id).is_err() {
            return Err(not_found());
        }
        let mut conn = self.db.pool().acquire().await?;
        let mut event = store::event(&mut conn, event_id).await?;
        drop(conn);
        if event.is_none() && self.catalog.fetch(event_id, None).await.unwrap_or(false) {
            let mut conn = self.db.pool().acquire().await?;
            event = store::event(&mut conn, event_id).await?;
        }
        let event = event.ok_or_else(not_found)?;
        if !works_door(actor, &event) {
            return Err(TicketingError::Forbidden(
                "only the organization's owner, admins and staff check tickets in".into(),
            ));
        }
        Ok(event)
    }

    #[tracing::instrument(skip_all, fields(event_id))]
    pub async fn check_in(&self, actor: Option<&Actor>, event_id: &str, code: &str) -> Result<CheckInResponse> {
        let event = self.door_event(actor, event_id).await?;
        let not_valid = || TicketingError::NotFound("not a valid ticket of this event".into());
        let (code_event, ticket_id) = verify(&event.public_key, code).ok_or_else(not_valid)?;
        if code_event.to_string() != event.id {
            return Err(not_valid());
        }
        let now = now_ms();
        let mut tx = self.db.pool().begin().await?;
        let ticket: Option<TicketRow> = sqlx::query_as(&format!("{TICKET_SELECT} WHERE k.id = $1 AND k.event_id = $2"))
            .bind(ticket_id.to_string())
            .bind(&event.id)
            .fetch_optional(&mut *tx)
            .await?;
        let ticket = ticket.ok_or_else(not_valid)?;
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
        let scanned = sqlx::query(
            "UPDATE tickets SET status = 'checked_in', checked_in_at = $1 WHERE id = $2 AND status = 'valid'",
        )
        .bind(now)
        .bind(&ticket.id)
        .execute(&mut *tx)
        .await?;
        if scanned.rows_affected() == 0 {
            // Another scanner won the race by a hair.
            tx.rollback().await?;
            let at: Option<i64> = sqlx::query_scalar("SELECT checked_in_at FROM tickets WHERE id = $1")
                .bind(&ticket.id)
                .fetch_one(self.db.pool())
                .await?;
            return Err(TicketingError::AlreadyCheckedIn(ms_to_rfc3339(at.unwrap_or(now))));
        }
        let checked_in = TicketCheckedIn {
            ticket_id,
            event_id: code_event,
            ticket_type_id: TicketTypeId::parse(&ticket.ticket_type_id).context("stored ticket type")?,
            checked_in_at: from_ms(now),
        };
        outbox::enqueue(&mut tx, SERVICE, &checked_in, None).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(CheckInResponse { ticket_id: ticket.id, status: "checked_in".into(), checked_in_at: ms_to_rfc3339(now) })
    }

    pub async fn checkin_key(&self, actor: Option<&Actor>, event_id: &str) -> Result<CheckinKey> {
        let event = self.door_event(actor, event_id).await?;
        Ok(CheckinKey {
            event_id: event.id,
            algorithm: "Ed25519".into(),
            public_key: event.public_key,
            code_format: CODE_FORMAT.into(),
        })
    }

    /// The buyer's tickets, newest first.
    pub async fn list_tickets(&self, buyer_id: &str, page_size: i64, page_token: &str) -> Result<ListTicketsResponse> {
        let (limit, after) = page(page_size, page_token)?;
        let rows: Vec<TicketRow> =
            sqlx::query_as(&format!("{TICKET_SELECT} WHERE k.buyer_id = $1 AND k.id < $2 ORDER BY k.id DESC LIMIT $3"))
                .bind(buyer_id)
                .bind(after)
                .bind(limit + 1)
                .fetch_all(self.db.pool())
                .await?;
        let (rows, next_page_token) = split_page(rows, limit, |t| t.id.clone());
        Ok(ListTicketsResponse { items: rows.iter().map(store::ticket_proto).collect(), next_page_token })
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
