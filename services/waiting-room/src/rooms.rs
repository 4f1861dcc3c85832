//! The operations on rooms and places: put and read a room (its organizers' side), join the
//! queue and read one's place (the buyers' side). A buyer's poll reads the queue store and the
//! room's row as [`Rooms::kept`] keeps it, so that 100,000 buyers polling cost the database one
//! read per room per second; it writes nothing.

use std::sync::Arc;

use eventhive_domain::{
    EventId, UserId,
    admission::{Admission, SigningKey},
};
use eventhive_platform::grpc::Channel;
use eventhive_platform::{
    ErrorKind, FieldError, Problem, Secrets, grpc,
    storage::{now_ms, to_ms},
};
use eventhive_proto::{
    catalog::{GetEventRequest, catalog_client::CatalogClient},
    common::Actor,
    ticketing::{RequireAdmissionRequest, ticketing_client::TicketingClient},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    error::WaitingRoomError,
    queue::{QueueCounts, QueueStore, Standing},
    repository::{RoomRow, Rooms},
};

type Result<T> = std::result::Result<T, WaitingRoomError>;

pub const DEFAULT_TTL_SECS: i64 = 600;

/// What rooms' private signing keys are sealed for, in the waiting room's database.
pub const ROOM_KEY_PURPOSE: &str = "waiting-room-signing-key";

/// A room's settings as an organizer puts them, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomSettings {
    pub opens_at_ms: i64,
    pub admit_per_minute: Option<i64>,
    pub admission_ttl_secs: i64,
}

impl RoomSettings {
    /// Checks every field and names each that is wrong.
    pub fn parse(opens_at: &str, admit_per_minute: Option<i64>, ttl_secs: Option<i64>) -> Result<Self> {
        let mut errors = Vec::new();
        let opens_at = OffsetDateTime::parse(opens_at, &Rfc3339).map(to_ms);
        if opens_at.is_err() {
            errors.push(FieldError::new("opens_at", "must be an RFC 3339 time"));
        }
        if admit_per_minute.is_some_and(|rate| !(1..=1_000_000).contains(&rate)) {
            errors.push(FieldError::new("admit_per_minute", "must be 1 to 1000000"));
        }
        let admission_ttl_secs = ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
        if !(60..=3600).contains(&admission_ttl_secs) {
            errors.push(FieldError::new("admission_ttl_secs", "must be 60 to 3600"));
        }
        match opens_at {
            Ok(opens_at_ms) if errors.is_empty() => Ok(Self { opens_at_ms, admit_per_minute, admission_ttl_secs }),
            _ => Err(WaitingRoomError::Invalid(errors)),
        }
    }
}

/// A room as its readers see it.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub row: RoomRow,
    pub status: &'static str,
    pub counts: QueueCounts,
}

/// A buyer's place as they see it.
#[derive(Debug, Clone, Default)]
pub struct PlaceView {
    pub status: &'static str,
    pub position: Option<i64>,
    pub ahead: Option<i64>,
    pub estimated_wait_secs: Option<i64>,
    pub poll_after_secs: i64,
    /// The token and when it expires (Unix milliseconds).
    pub admission: Option<(String, i64)>,
}

fn room_status(row: &RoomRow) -> &'static str {
    match (row.opened_at, row.sold_out_at) {
        (_, Some(_)) => "sold_out",
        (Some(_), None) => "open",
        (None, None) => "scheduled",
    }
}

fn unavailable(what: &str, status: &tonic::Status) -> WaitingRoomError {
    WaitingRoomError::Unavailable(format!("{what}: {}", status.message()))
}

#[derive(Clone)]
pub struct WaitingRooms {
    rooms: Rooms,
    queue: Arc<dyn QueueStore>,
    catalog: CatalogClient<Channel>,
    ticketing: TicketingClient<Channel>,
    /// Seals the rooms' private keys at rest, and opens them to sign.
    secrets: Secrets,
    /// The automatic rate's step, per second: what a waiting buyer's estimate assumes.
    auto_admit_per_sec: i64,
}

impl WaitingRooms {
    pub fn new(
        rooms: Rooms,
        queue: Arc<dyn QueueStore>,
        catalog: CatalogClient<Channel>,
        ticketing: TicketingClient<Channel>,
        secrets: Secrets,
        auto_admit_per_sec: i64,
    ) -> Self {
        Self { rooms, queue, catalog, ticketing, secrets, auto_admit_per_sec }
    }

    /// The room's signing key, from its sealed form.
    fn signing_key(&self, stored: &str) -> Result<SigningKey> {
        let opened = self.secrets.open(ROOM_KEY_PURPOSE, stored)?.plaintext;
        let pkcs8 = String::from_utf8(opened).map_err(|_| anyhow::anyhow!("the room's signing key is not text"))?;
        Ok(SigningKey::from_pkcs8(&pkcs8).map_err(|e| anyhow::anyhow!(e))?)
    }

    /// The event's organization, if the actor may see the event.
    async fn visible_event(&self, actor: Option<Actor>, event: EventId) -> Result<String> {
        let request = GetEventRequest { actor, event_id: event.to_string() };
        match self.catalog.clone().get_event(grpc::request(request, None)).await {
            Ok(found) => Ok(found.into_inner().organization_id),
            Err(status) if Problem::from_status(&status).kind() == ErrorKind::NotFound => {
                Err(WaitingRoomError::EventNotFound)
            }
            Err(status) => Err(unavailable("catalog", &status)),
        }
    }

    async fn room(&self, event: EventId) -> Result<RoomRow> {
        self.rooms.get(event).await?.ok_or(WaitingRoomError::NoRoom)
    }

    async fn view(&self, row: RoomRow) -> Result<RoomView> {
        let event = EventId::parse(&row.event_id).map_err(|e| anyhow::anyhow!("stored event id: {e}"))?;
        let counts = self.queue.counts(event, now_ms()).await.map_err(|e| unavailable_store(&e))?;
        Ok(RoomView { status: room_status(&row), row, counts })
    }

    /// Creates or changes the event's room. Ticketing is told to require admissions before the
    /// room is stored, so no room is ever shown while orders still pass without a token.
    #[tracing::instrument(skip(self, actor, settings), fields(event_id = %event))]
    pub async fn put(&self, actor: Actor, event: EventId, settings: RoomSettings) -> Result<RoomView> {
        let organization_id = self.visible_event(Some(actor.clone()), event).await?;
        let manages = actor
            .memberships
            .iter()
            .any(|m| m.organization_id == organization_id && matches!(m.role.as_str(), "owner" | "admin"));
        if !manages {
            return Err(WaitingRoomError::NotAllowed);
        }
        let existing = self.rooms.get(event).await?;
        let signing_key = match &existing {
            Some(row) => row.signing_key.clone(),
            None => {
                let pkcs8 = SigningKey::generate().map_err(|e| anyhow::anyhow!(e))?;
                self.secrets.seal(ROOM_KEY_PURPOSE, pkcs8.as_bytes())?
            }
        };
        let mut row = RoomRow {
            event_id: event.to_string(),
            organization_id,
            opens_at: settings.opens_at_ms,
            admit_per_minute: settings.admit_per_minute,
            admission_ttl_secs: settings.admission_ttl_secs,
            signing_key,
            draw_seed: None,
            early_arrivals: None,
            opened_at: None,
            sold_out_at: None,
        };
        if let Some(current) = &existing {
            let opened = current.opened_at.is_some() || current.opens_at <= now_ms();
            if opened {
                if (current.opens_at, current.admission_ttl_secs) != (row.opens_at, row.admission_ttl_secs) {
                    return Err(WaitingRoomError::Conflict(
                        "the waiting room has opened: only admit_per_minute may change".into(),
                    ));
                }
                row.opens_at = current.opens_at;
            }
            self.require_admission(event, &row.signing_key).await?;
            if !self.rooms.update(&row, !opened).await? {
                return Err(WaitingRoomError::Conflict("the waiting room opened meanwhile; try again".into()));
            }
        } else {
            self.require_admission(event, &row.signing_key).await?;
            if !self.rooms.insert(&row).await? {
                // Another request created the room first, and may have told ticketing its key
                // before ours: ticketing must verify with the stored room's key, not ours.
                let stored = self.room(event).await?;
                self.require_admission(event, &stored.signing_key).await?;
                return Err(WaitingRoomError::Conflict("the waiting room was created meanwhile; try again".into()));
            }
        }
        self.view(self.room(event).await?).await
    }

    async fn require_admission(&self, event: EventId, signing_key: &str) -> Result<()> {
        let public_key = self.signing_key(signing_key)?.public_key();
        let request = RequireAdmissionRequest { event_id: event.to_string(), public_key };
        self.ticketing
            .clone()
            .require_admission(grpc::request(request, None))
            .await
            .map_err(|status| unavailable("ticketing", &status))?;
        Ok(())
    }

    /// The event's room, for whoever may see the event.
    pub async fn get(&self, actor: Option<Actor>, event: EventId) -> Result<RoomView> {
        let row = self.room(event).await?;
        self.visible_event(actor, event).await.map_err(|error| match error {
            WaitingRoomError::EventNotFound => WaitingRoomError::NoRoom,
            other => other,
        })?;
        self.view(row).await
    }

    /// Puts the buyer in the queue; `true` if they joined now.
    #[tracing::instrument(skip(self), fields(event_id = %event))]
    pub async fn join(&self, buyer: UserId, event: EventId) -> Result<(bool, PlaceView)> {
        let row = self.room(event).await?;
        let now = now_ms();
        let (joined, standing) =
            self.queue.join(event, buyer, now, row.opens_at).await.map_err(|e| unavailable_store(&e))?;
        Ok((joined, self.place_view(&row, event, buyer, standing, now)?))
    }

    /// The buyer's place: reads only, the room as kept in memory.
    pub async fn place(&self, buyer: UserId, event: EventId) -> Result<PlaceView> {
        let kept = self.rooms.kept(event).await?;
        let row = Option::as_ref(&kept).ok_or(WaitingRoomError::NoRoom)?;
        let now = now_ms();
        let standing = self.queue.standing(event, buyer, now).await.map_err(|e| unavailable_store(&e))?;
        self.place_view(row, event, buyer, standing.ok_or(WaitingRoomError::NotJoined)?, now)
    }

    fn place_view(
        &self,
        row: &RoomRow,
        event: EventId,
        buyer: UserId,
        standing: Standing,
        now: i64,
    ) -> Result<PlaceView> {
        let sold_out = row.sold_out_at.is_some();
        let per_sec = row.admit_per_minute.map_or(self.auto_admit_per_sec as f64, |rate| rate as f64 / 60.0);
        Ok(match standing {
            Standing::Early if sold_out => {
                PlaceView { status: "sold_out", poll_after_secs: 10, ..PlaceView::default() }
            }
            Standing::Early => PlaceView {
                status: "waiting",
                // Half the time left to the opening, so the clients' polls spread out.
                poll_after_secs: ((row.opens_at - now) / 2000).clamp(1, 60),
                ..PlaceView::default()
            },
            Standing::Waiting { position, ahead } if sold_out => PlaceView {
                status: "sold_out",
                position: Some(position),
                ahead: Some(ahead),
                poll_after_secs: 10,
                ..PlaceView::default()
            },
            Standing::Waiting { position, ahead } => {
                let wait = (ahead as f64 / per_sec.max(0.001)).ceil() as i64;
                PlaceView {
                    status: "waiting",
                    position: Some(position),
                    ahead: Some(ahead),
                    estimated_wait_secs: Some(wait),
                    // A quarter of the expected wait: about four polls per buyer whatever the
                    // queue's length, and at once near the front.
                    poll_after_secs: (wait / 4).clamp(1, 30),
                    ..PlaceView::default()
                }
            }
            Standing::Admitted { position, expires_at_ms } => {
                let key = self.signing_key(&row.signing_key)?;
                let token = Admission { event_id: event, buyer_id: buyer, expires_at_ms }.sign(&key);
                PlaceView {
                    status: "admitted",
                    position: Some(position),
                    ahead: Some(0),
                    estimated_wait_secs: Some(0),
                    poll_after_secs: ((expires_at_ms - now) / 1000).clamp(1, 60),
                    admission: Some((token, expires_at_ms)),
                }
            }
            Standing::Expired { position } => {
                PlaceView { status: "expired", position: Some(position), poll_after_secs: 60, ..PlaceView::default() }
            }
        })
    }
}

fn unavailable_store(error: &anyhow::Error) -> WaitingRoomError {
    tracing::error!(error = format!("{error:#}"), "the queue store failed");
    WaitingRoomError::Unavailable("the queue is unavailable".into())
}
