//! The waiting room's gRPC service: glue only. Each call parses its ids, runs one operation of
//! `rooms`, and encodes the answer.

use eventhive_domain::{EventId, UserId};
use eventhive_platform::storage::ms_to_rfc3339;
use eventhive_proto::waiting_room::{
    Admission, GetPlaceRequest, GetRoomRequest, JoinQueueRequest, JoinQueueResponse, Place, PutRoomRequest, Room,
    waiting_room_server,
};
use tonic::{Request, Response, Status};

use crate::{
    error::WaitingRoomError,
    rooms::{PlaceView, RoomSettings, RoomView, WaitingRooms},
};

pub struct WaitingRoomService {
    rooms: WaitingRooms,
}

impl WaitingRoomService {
    pub fn new(rooms: WaitingRooms) -> Self {
        Self { rooms }
    }
}

type Answer<T> = Result<Response<T>, Status>;

/// An id that is not one of ours names no event.
fn event_id(raw: &str) -> Result<EventId, WaitingRoomError> {
    EventId::parse(raw).map_err(|_| WaitingRoomError::EventNotFound)
}

/// The gateway sends the verified user; anything else is a bug upstream.
fn buyer_id(raw: &str) -> Result<UserId, WaitingRoomError> {
    UserId::parse(raw).map_err(|_| WaitingRoomError::Unexpected(anyhow::anyhow!("malformed buyer id {raw:?}")))
}

#[tonic::async_trait]
impl waiting_room_server::WaitingRoom for WaitingRoomService {
    async fn put_room(&self, request: Request<PutRoomRequest>) -> Answer<Room> {
        let request = request.into_inner();
        let settings = RoomSettings::parse(&request.opens_at, request.admit_per_minute, request.admission_ttl_secs)?;
        let actor = request.actor.ok_or(WaitingRoomError::NotAllowed)?;
        let room = self.rooms.put(actor, event_id(&request.event_id)?, settings).await?;
        Ok(Response::new(room_to_proto(room)))
    }

    async fn get_room(&self, request: Request<GetRoomRequest>) -> Answer<Room> {
        let request = request.into_inner();
        let room =
            self.rooms.get(request.actor, event_id(&request.event_id).map_err(|_| WaitingRoomError::NoRoom)?).await?;
        Ok(Response::new(room_to_proto(room)))
    }

    async fn join_queue(&self, request: Request<JoinQueueRequest>) -> Answer<JoinQueueResponse> {
        let request = request.into_inner();
        let event = event_id(&request.event_id).map_err(|_| WaitingRoomError::NoRoom)?;
        let (joined, place) = self.rooms.join(buyer_id(&request.buyer_id)?, event).await?;
        Ok(Response::new(JoinQueueResponse { place: Some(place_to_proto(place)), joined }))
    }

    async fn get_place(&self, request: Request<GetPlaceRequest>) -> Answer<Place> {
        let request = request.into_inner();
        let event = event_id(&request.event_id).map_err(|_| WaitingRoomError::NoRoom)?;
        let place = self.rooms.place(buyer_id(&request.buyer_id)?, event).await?;
        Ok(Response::new(place_to_proto(place)))
    }
}

fn room_to_proto(room: RoomView) -> Room {
    Room {
        event_id: room.row.event_id,
        opens_at: ms_to_rfc3339(room.row.opens_at),
        status: room.status.to_owned(),
        admit_per_minute: room.row.admit_per_minute,
        admission_ttl_secs: room.row.admission_ttl_secs,
        queued: room.counts.queued,
        admitted: room.counts.admitted_total,
        expired: room.counts.expired_total,
    }
}

fn place_to_proto(place: PlaceView) -> Place {
    Place {
        status: place.status.to_owned(),
        position: place.position,
        ahead: place.ahead,
        estimated_wait_secs: place.estimated_wait_secs,
        poll_after_secs: place.poll_after_secs,
        admission: place
            .admission
            .map(|(token, expires_at)| Admission { token, expires_at: ms_to_rfc3339(expires_at) }),
    }
}
