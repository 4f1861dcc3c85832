//! What every request handler shares: clients of the services, the token verifier, the rate
//! limiter and the settings.

use std::sync::Arc;

use eventhive_domain::UserId;
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
use tonic::transport::Channel;

use crate::{GatewaySettings, auth::JwtVerifier, ratelimit::RateLimiter};

#[derive(Clone)]
pub struct AppState {
    pub identity: IdentityClient<Channel>,
    pub catalog: CatalogClient<Channel>,
    pub ticketing: TicketingClient<Channel>,
    pub analytics: AnalyticsClient<Channel>,
    pub notifications: NotificationsClient<Channel>,
    pub waiting_room: WaitingRoomClient<Channel>,
    /// Analytics without a per-call deadline, for live streams that last as long as the client.
    pub analytics_stream_channel: Channel,
    pub identity_channel: Channel,
    pub catalog_channel: Channel,
    pub ticketing_channel: Channel,
    pub analytics_channel: Channel,
    pub notifications_channel: Channel,
    pub waiting_room_channel: Channel,
    pub verifier: Arc<JwtVerifier>,
    pub limiter: Arc<RateLimiter>,
    pub settings: Arc<Settings>,
    /// The gateway's own section: rate limits, time bound, CORS, proxies.
    pub gateway: Arc<GatewaySettings>,
}

impl AppState {
    pub async fn new(settings: Settings, gateway: GatewaySettings) -> anyhow::Result<Self> {
        let deadline = std::time::Duration::from_millis(settings.grpc_deadline_ms);
        let identity_channel = grpc::channel(&settings.endpoint("identity")?, deadline)?;
        let catalog_channel = grpc::channel(&settings.endpoint("catalog")?, deadline)?;
        let ticketing_channel = grpc::channel(&settings.endpoint("ticketing")?, deadline)?;
        let analytics_channel = grpc::channel(&settings.endpoint("analytics")?, deadline)?;
        let notifications_channel = grpc::channel(&settings.endpoint("notifications")?, deadline)?;
        let waiting_room_channel = grpc::channel(&settings.endpoint("waiting_room")?, deadline)?;
        let analytics_stream_channel = grpc::streaming_channel(&settings.endpoint("analytics")?)?;
        let identity = IdentityClient::new(identity_channel.clone());
        let limiter = match &settings.redis_url {
            Some(url) => RateLimiter::redis(url, &settings.redis_prefix).await?,
            None => RateLimiter::in_memory(),
        };
        Ok(Self {
            verifier: Arc::new(JwtVerifier::new(identity.clone())),
            identity,
            catalog: CatalogClient::new(catalog_channel.clone()),
            ticketing: TicketingClient::new(ticketing_channel.clone()),
            analytics: AnalyticsClient::new(analytics_channel.clone()),
            notifications: NotificationsClient::new(notifications_channel.clone()),
            waiting_room: WaitingRoomClient::new(waiting_room_channel.clone()),
            waiting_room_channel,
            analytics_channel,
            notifications_channel,
            analytics_stream_channel,
            identity_channel,
            catalog_channel,
            ticketing_channel,
            limiter: Arc::new(limiter),
            settings: Arc::new(settings),
            gateway: Arc::new(gateway),
        })
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
