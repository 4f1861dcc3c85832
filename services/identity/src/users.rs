//! People: signing up, and finding a user with their organizations.

use eventhive_domain::UserId;
use eventhive_platform::storage::now_ms;

use crate::{
    domain::{Email, NewUser},
    error::IdentityError,
    passwords::PasswordHashing,
    repository::{MembershipRow, Repository, UserRow},
};

type Result<T> = std::result::Result<T, IdentityError>;

/// A user with the organizations they are in.
pub struct Profile {
    pub user: UserRow,
    pub organizations: Vec<MembershipRow>,
}

pub struct Users {
    repository: Repository,
    passwords: PasswordHashing,
}

impl Users {
    pub fn new(repository: Repository, passwords: PasswordHashing) -> Self {
        Self { repository, passwords }
    }

    /// A new account; an email compares case-insensitively, so `Ada@x.org` and `ada@x.org` are one.
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, new: NewUser) -> Result<UserRow> {
        let hash = self.passwords.hash(new.password.expose().to_owned()).await?;
        let id = UserId::new();
        if !self.repository.insert_user(id, &new.email, &new.display_name, &hash, now_ms()).await? {
            return Err(IdentityError::EmailTaken);
        }
        Ok(UserRow { id, email: new.email.as_str().to_owned(), display_name: new.display_name.as_str().to_owned() })
    }

    #[tracing::instrument(skip_all, fields(%user_id))]
    pub async fn profile(&self, user_id: UserId) -> Result<Profile> {
        let user = self.repository.user(user_id).await?.ok_or(IdentityError::UserNotFound)?;
        let organizations = self.repository.memberships_of(user_id).await?;
        Ok(Profile { user, organizations })
    }

    #[tracing::instrument(skip_all)]
    pub async fn find_by_email(&self, email: &str) -> Result<UserRow> {
        self.repository.user_by_email(&Email::normalize(email)).await?.ok_or(IdentityError::UserNotFound)
    }
}
