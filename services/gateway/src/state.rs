//! What every request handler shares: clients of the services, the token verifier, the rate
//! limiter and the settings.

use std::sync::Arc;

use eventhive_domain::UserId;
use eventhive_platform::grpc::Channel;
use eventhive_platform::{Problem, Settings, grpc};
use eventhive_proto::{
    analytics::analytics_client::AnalyticsClient,
    catalog::catalog_client::CatalogClient,
    common::{Actor, Membership},
    identity::{ListMembershipsRequest, identity_client::IdentityClient},
    notifications::notifications_client::NotificationsClient,
    ticketing::ticketing_client::TicketingClient,
    waiting_room::waiting_room_client::WaitingRoomClient,
};

use crate::{GatewaySettings, auth::JwtVerifier, public_reads::PublicReads, ratelimit::RateLimiter};

/// Every handler and layer takes the state by value, several times per request: one shared
/// [`Services`] behind an `Arc`, so that is one count, not a copy of every client (a profile of
/// the event reads showed those copies at a sixth of the gateway's time).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub identity: IdentityClient<Channel>,
    pub catalog: CatalogClient<Channel>,
    pub ticketing: TicketingClient<Channel>,
    pub analytics: AnalyticsClient<Channel>,
    pub notifications: NotificationsClient<Channel>,
    pub waiting_room: WaitingRoomClient<Channel>,
    /// Analytics without a per-call deadline, for live streams that last as long as the client.
    pub analytics_stream_channel: Channel,
    /// Plain channels, for the health checks of readiness (open, no service token).
    pub identity_channel: tonic::transport::Channel,
    pub catalog_channel: tonic::transport::Channel,
    pub ticketing_channel: tonic::transport::Channel,
    pub analytics_channel: tonic::transport::Channel,
    pub notifications_channel: tonic::transport::Channel,
    pub waiting_room_channel: tonic::transport::Channel,
    pub verifier: Arc<JwtVerifier>,
    pub limiter: Arc<RateLimiter>,
    /// The event list and pages as visitors not signed in read them, kept for a moment.
    pub public: Arc<PublicReads>,
    pub settings: Arc<Settings>,
    /// The gateway's own section: rate limits, time bound, CORS, proxies.
    pub gateway: Arc<GatewaySettings>,
}

impl AppState {
    pub async fn new(settings: Settings, gateway: GatewaySettings) -> anyhow::Result<Self> {
        let deadline = std::time::Duration::from_millis(settings.grpc_deadline_ms);
        let secrets = eventhive_platform::Secrets::load(&settings)?;
        let identity_channel = grpc::health_channel(&settings.endpoint("identity")?, deadline)?;
        let catalog_channel = grpc::health_channel(&settings.endpoint("catalog")?, deadline)?;
        let ticketing_channel = grpc::health_channel(&settings.endpoint("ticketing")?, deadline)?;
        let analytics_channel = grpc::health_channel(&settings.endpoint("analytics")?, deadline)?;
        let notifications_channel = grpc::health_channel(&settings.endpoint("notifications")?, deadline)?;
        let waiting_room_channel = grpc::health_channel(&settings.endpoint("waiting_room")?, deadline)?;
        let analytics_stream_channel = grpc::streaming_channel(&settings.endpoint("analytics")?, &secrets)?;
        let identity = IdentityClient::new(grpc::authenticated(identity_channel.clone(), &secrets));
        let limiter = match &settings.redis_url {
            Some(url) => RateLimiter::redis(url, &settings.redis_prefix).await?,
            None => RateLimiter::in_memory(),
        };
        Ok(Self(Arc::new(Services {
            verifier: Arc::new(JwtVerifier::new(
                identity.clone(),
                std::time::Duration::from_secs(gateway.jwks_cache_secs),
            )),
            identity,
            catalog: CatalogClient::new(grpc::authenticated(catalog_channel.clone(), &secrets)),
            ticketing: TicketingClient::new(grpc::authenticated(ticketing_channel.clone(), &secrets)),
            analytics: AnalyticsClient::new(grpc::authenticated(analytics_channel.clone(), &secrets)),
            notifications: NotificationsClient::new(grpc::authenticated(notifications_channel.clone(), &secrets)),
            waiting_room: WaitingRoomClient::new(grpc::authenticated(waiting_room_channel.clone(), &secrets)),
            waiting_room_channel,
            analytics_channel,
            notifications_channel,
            analytics_stream_channel,
            identity_channel,
            catalog_channel,
            ticketing_channel,
            limiter: Arc::new(limiter),
            public: Arc::new(PublicReads::new(std::time::Duration::from_millis(gateway.public_read_cache_ms))),
            settings: Arc::new(settings),
            gateway: Arc::new(gateway),
        })))
    }

    /// The user and their current memberships, read at each request so that a change of
    /// membership takes effect at once.
    pub async fn actor(&self, user: UserId, request_id: Option<&str>) -> Result<Actor, Problem> {
        let memberships = self
            .identity
            .clone()
            .list_memberships(grpc::request(ListMembershipsRequest { user_id: user.to_string() }, request_id))
            .await
            .map_err(|status| Problem::from_status(&status))?
            .into_inner()
            .memberships;
        Ok(Actor {
            user_id: user.to_string(),
            memberships: memberships
                .into_iter()
                .map(|m| Membership { organization_id: m.organization_id, role: m.role })
                .collect(),
        })
    }
}
