//! Organizations and their members: creating one (its creator becomes its owner), adding
//! members, and listing a user's memberships. Nobody grants themselves a role.

use eventhive_domain::{OrganizationId, UserId};
use eventhive_platform::{FieldError, storage::now_ms};

use crate::{
    domain::{NewMember, OrganizationName, Role},
    error::IdentityError,
    repository::{MemberRow, MembershipRow, Repository, UserRow},
};

type Result<T> = std::result::Result<T, IdentityError>;

/// A member just added.
pub struct AddedMember {
    pub organization_id: OrganizationId,
    pub user: UserRow,
    pub role: Role,
}

pub struct Organizations {
    repository: Repository,
}

impl Organizations {
    pub fn new(repository: Repository) -> Self {
        Self { repository }
    }

    /// A new organization, owned by `owner`.
    #[tracing::instrument(skip_all, fields(user_id = %owner))]
    pub async fn create(&self, owner: UserId, name: OrganizationName) -> Result<(OrganizationId, OrganizationName)> {
        self.repository.user(owner).await?.ok_or(IdentityError::UserNotFound)?;
        let id = OrganizationId::new();
        let now = now_ms();
        let mut tx = self.repository.begin().await?;
        self.repository.insert_organization(&mut tx, id, &name, now).await?;
        if !self.repository.insert_membership(&mut tx, id, owner, Role::Owner, now).await? {
            return Err(anyhow::anyhow!("organization {id} had a member before it was created").into());
        }
        tx.commit().await?;
        Ok((id, name))
    }

    /// Adds the account with the member's email. `member` is checked after the actor's role, so
    /// that someone who may not add members learns only that.
    #[tracing::instrument(skip_all, fields(%organization_id))]
    pub async fn add_member(
        &self,
        actor: UserId,
        organization_id: OrganizationId,
        member: std::result::Result<NewMember, Vec<FieldError>>,
    ) -> Result<AddedMember> {
        // An organization one is not in is invisible: 404, not 403.
        let actor_role =
            self.repository.role_in(organization_id, actor).await?.ok_or(IdentityError::OrganizationNotFound)?;
        if !actor_role.manages_members() {
            return Err(IdentityError::NotAllowed);
        }
        let NewMember { email, role } = member.map_err(IdentityError::Invalid)?;
        let user = self
            .repository
            .user_by_email(&email.normalized())
            .await?
            .ok_or_else(|| IdentityError::from(FieldError::new("email", "no account has this email")))?;
        let mut conn = self.repository.connection().await?;
        if !self.repository.insert_membership(&mut conn, organization_id, user.id, role, now_ms()).await? {
            return Err(IdentityError::AlreadyMember(user.email));
        }
        Ok(AddedMember { organization_id, user, role })
    }

    /// The organization's members, for a member: an organization one is not in is not there
    /// for them.
    #[tracing::instrument(skip_all, fields(%organization_id))]
    pub async fn members(&self, actor: UserId, organization_id: OrganizationId) -> Result<Vec<MemberRow>> {
        self.repository.role_in(organization_id, actor).await?.ok_or(IdentityError::OrganizationNotFound)?;
        self.repository.members_of(organization_id).await
    }

    #[tracing::instrument(skip_all, fields(%user_id))]
    pub async fn memberships_of(&self, user_id: UserId) -> Result<Vec<MembershipRow>> {
        self.repository.memberships_of(user_id).await
    }
}
