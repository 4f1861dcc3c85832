//! Who may read an event's figures: the owner, admins and staff of the organization that runs
//! it, by the memberships the gateway established for this request — so a change of membership
//! takes effect at the next request — and, while a live stream stays open, by the memberships
//! [`Memberships`] finds now.

use anyhow::Context;
use async_trait::async_trait;
use eventhive_domain::EventId;
use eventhive_platform::grpc::Channel;
use eventhive_platform::{Database, grpc};
use eventhive_proto::{
    common::{Actor, Membership},
    identity::{ListMembershipsRequest, identity_client::IdentityClient},
};

use crate::{error::AnalyticsError, repository};

/// Where a user's current memberships are found, to re-check an open stream's reader.
#[async_trait]
pub trait Memberships: Send + Sync + 'static {
    async fn of(&self, user_id: &str) -> anyhow::Result<Vec<Membership>>;
}

/// Identity's `ListMemberships`: the memberships the gateway would find for a new request.
pub struct IdentityMemberships {
    client: IdentityClient<Channel>,
}

impl IdentityMemberships {
    pub fn new(channel: Channel) -> Self {
        Self { client: IdentityClient::new(channel) }
    }
}

#[async_trait]
impl Memberships for IdentityMemberships {
    #[tracing::instrument(name = "identity.list_memberships", skip(self))]
    async fn of(&self, user_id: &str) -> anyhow::Result<Vec<Membership>> {
        let request = grpc::request(ListMembershipsRequest { user_id: user_id.to_owned() }, None);
        let memberships = self.client.clone().list_memberships(request).await.context("asking identity")?;
        Ok(memberships
            .into_inner()
            .memberships
            .into_iter()
            .map(|m| Membership { organization_id: m.organization_id, role: m.role })
            .collect())
    }
}

/// Whether `user_id` may still read the figures of an event of `organization_id`, by the
/// memberships `memberships` finds now.
pub async fn may_still_read(
    memberships: &dyn Memberships,
    user_id: &str,
    organization_id: &str,
) -> anyhow::Result<bool> {
    let actor = Actor { user_id: user_id.to_owned(), memberships: memberships.of(user_id).await? };
    Ok(may_read(Some(&actor), organization_id))
}

/// The roles that see an event's figures: every role an organization has.
const ROLES: [&str; 3] = ["owner", "admin", "staff"];

/// Whether `actor` may read the figures of an event of `organization_id`.
pub fn may_read(actor: Option<&Actor>, organization_id: &str) -> bool {
    actor
        .into_iter()
        .flat_map(|a| a.memberships.iter())
        .any(|m| m.organization_id == organization_id && ROLES.contains(&m.role.as_str()))
}

/// Whether the event exists (analytics heard of it) and `actor` may read its figures.
pub async fn authorize(db: &Database, actor: Option<&Actor>, event_id: EventId) -> Result<(), AnalyticsError> {
    let organization = repository::organization_of(db, event_id).await?.ok_or(AnalyticsError::EventNotFound)?;
    if !may_read(actor, &organization) {
        return Err(AnalyticsError::NotAllowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(organization_id: &str, role: &str) -> Actor {
        Actor {
            user_id: "u".into(),
            memberships: vec![Membership { organization_id: organization_id.into(), role: role.into() }],
        }
    }

    #[test]
    fn members_of_the_organization_read_and_nobody_else() {
        for role in ["owner", "admin", "staff"] {
            assert!(may_read(Some(&actor("org", role)), "org"), "{role}");
        }
        assert!(!may_read(Some(&actor("other", "owner")), "org"));
        assert!(!may_read(Some(&actor("org", "guest")), "org"));
        assert!(!may_read(Some(&Actor { user_id: "u".into(), memberships: vec![] }), "org"));
        assert!(!may_read(None, "org"));
    }
}
