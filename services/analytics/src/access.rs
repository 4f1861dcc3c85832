//! Who may read an event's figures: the owner, admins and staff of the organization that runs
//! it, by the memberships the gateway established for this request — so a change of membership
//! takes effect at the next request.

use eventhive_domain::EventId;
use eventhive_platform::Database;
use eventhive_proto::common::Actor;

use crate::{error::AnalyticsError, repository};

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
    use eventhive_proto::common::Membership;

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
