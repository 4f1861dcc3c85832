//! The gRPC face of analytics: glue from the contract to the read model — an event's figures
//! once ([`figures`]) or as a live stream ([`live`]), and the rebuild ([`Projection`]).

use std::{pin::Pin, sync::Arc};

use eventhive_domain::EventId;
use eventhive_platform::shutdown::CancellationToken;
use eventhive_proto::{
    analytics::{
        EventAnalytics, GetEventAnalyticsRequest, RebuildRequest, RebuildResponse, analytics_server::Analytics,
    },
    common::Actor,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::{
    access::{self, Memberships},
    error::AnalyticsError,
    fanout::{Hub, LiveConfig},
    figures, live,
    projection::Projection,
};

/// The server-streaming answer of `WatchEventAnalytics`.
pub type FiguresStream = Pin<Box<dyn Stream<Item = Result<EventAnalytics, Status>> + Send>>;

/// The `Analytics` gRPC service.
#[derive(Clone)]
pub struct AnalyticsService {
    /// The read model: figures are read from its database, and live streams wake on its changes.
    projection: Projection,
    /// This replica's live streams: one shared computation per watched event, and the caps.
    hub: Hub,
    /// Where an open stream's reader is re-checked.
    memberships: Arc<dyn Memberships>,
}

impl AnalyticsService {
    /// `shutdown` ends every live stream, so that the server can drain when it stops.
    pub fn new(
        projection: Projection,
        memberships: Arc<dyn Memberships>,
        live: LiveConfig,
        shutdown: CancellationToken,
    ) -> Self {
        let hub = Hub::new(projection.clone(), live, shutdown);
        Self { projection, hub, memberships }
    }

    /// The event `event_id` names, if it exists and `actor` may read its figures.
    async fn authorize(&self, actor: Option<&Actor>, event_id: &str) -> Result<EventId, AnalyticsError> {
        let event_id = EventId::parse(event_id).map_err(|_| AnalyticsError::EventNotFound)?;
        access::authorize(self.projection.db(), actor, event_id).await?;
        Ok(event_id)
    }
}

#[tonic::async_trait]
impl Analytics for AnalyticsService {
    #[tracing::instrument(skip_all, fields(event_id = %request.get_ref().event_id))]
    async fn get_event_analytics(
        &self,
        request: Request<GetEventAnalyticsRequest>,
    ) -> Result<Response<EventAnalytics>, Status> {
        let request = request.into_inner();
        let event_id = EventId::parse(&request.event_id).map_err(|_| AnalyticsError::EventNotFound)?;
        // Who may read them is decided by the organization the figures' own read returns: one
        // read of the database, not two.
        let figures = figures::load(self.projection.db(), event_id)
            .await
            .map_err(AnalyticsError::from)?
            .ok_or(AnalyticsError::EventNotFound)?;
        if !access::may_read(request.actor.as_ref(), &figures.organization_id) {
            return Err(AnalyticsError::NotAllowed.into());
        }
        Ok(Response::new(figures.into()))
    }

    type WatchEventAnalyticsStream = FiguresStream;

    #[tracing::instrument(skip_all, fields(event_id = %request.get_ref().event_id))]
    async fn watch_event_analytics(
        &self,
        request: Request<GetEventAnalyticsRequest>,
    ) -> Result<Response<FiguresStream>, Status> {
        let request = request.into_inner();
        let event_id = self.authorize(request.actor.as_ref(), &request.event_id).await?;
        // Authorized, so there is an actor.
        let actor = request.actor.ok_or(AnalyticsError::NotAllowed)?;
        let figures = live::watch(&self.hub, self.memberships.clone(), &actor, event_id).await?;
        Ok(Response::new(figures))
    }

    #[tracing::instrument(skip_all)]
    async fn rebuild(&self, _request: Request<RebuildRequest>) -> Result<Response<RebuildResponse>, Status> {
        let replayed = self.projection.rebuild().await.map_err(AnalyticsError::from)?;
        Ok(Response::new(RebuildResponse { events_replayed: i64::try_from(replayed).unwrap_or(i64::MAX) }))
    }
}
