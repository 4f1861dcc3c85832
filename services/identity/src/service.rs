//! The identity gRPC service: glue only. Each call decodes its request into domain types (ids
//! and checked fields), runs one operation of `users`, `sessions` or `organizations`, and
//! encodes the answer.

use std::sync::Arc;

use eventhive_domain::{OrganizationId, UserId};
use eventhive_platform::Database;
use eventhive_proto::identity::{
    AddMemberRequest, CreateOrganizationRequest, FindUserByEmailRequest, GetJwksRequest, GetUserRequest, Jwks,
    ListMembersRequest, ListMembersResponse, ListMembershipsRequest, ListMembershipsResponse, LoginRequest,
    LogoutRequest, LogoutResponse, Member, Organization, OrganizationMembership, RefreshRequest, RegisterRequest,
    TokenPair, User, UserProfile, identity_server,
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{NewMember, NewUser, OrganizationName},
    error::IdentityError,
    organizations::Organizations,
    passwords::PasswordHashing,
    repository::{MembershipRow, Repository, UserRow},
    sessions::{Session, Sessions},
    tokens::TokenIssuer,
    users::Users,
};

pub struct IdentityService {
    users: Users,
    sessions: Arc<Sessions>,
    organizations: Organizations,
    /// For the JWKS: the keys that verify the access tokens `sessions` hands out.
    tokens: Arc<TokenIssuer>,
}

impl IdentityService {
    pub fn new(db: Database, passwords: PasswordHashing, tokens: Arc<TokenIssuer>, refresh_ttl_secs: u64) -> Self {
        let repository = Repository::new(db);
        Self {
            users: Users::new(repository.clone(), passwords.clone()),
            sessions: Arc::new(Sessions::new(repository.clone(), passwords, tokens.clone(), refresh_ttl_secs)),
            organizations: Organizations::new(repository),
            tokens,
        }
    }

    /// For the service's housekeeping (pruning old sessions).
    pub fn sessions(&self) -> Arc<Sessions> {
        self.sessions.clone()
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl identity_server::Identity for IdentityService {
    async fn register(&self, request: Request<RegisterRequest>) -> Answer<User> {
        let new = NewUser::try_from(&request.into_inner()).map_err(IdentityError::Invalid)?;
        let user = self.users.register(new).await?;
        Ok(Response::new(user_to_proto(user)))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Answer<TokenPair> {
        let LoginRequest { email, password, client } = request.into_inner();
        let session = self.sessions.login(&email, password, &client).await?;
        Ok(Response::new(token_pair(session)))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Answer<TokenPair> {
        let session = self.sessions.refresh(&request.into_inner().refresh_token).await?;
        Ok(Response::new(token_pair(session)))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Answer<LogoutResponse> {
        self.sessions.logout(&request.into_inner().refresh_token).await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Answer<UserProfile> {
        // An id that is not one of ours names no user.
        let user_id = UserId::parse(&request.into_inner().user_id).map_err(|_| IdentityError::UserNotFound)?;
        let profile = self.users.profile(user_id).await?;
        Ok(Response::new(UserProfile {
            user: Some(user_to_proto(profile.user)),
            organizations: profile.organizations.into_iter().map(membership_to_proto).collect(),
        }))
    }

    async fn find_user_by_email(&self, request: Request<FindUserByEmailRequest>) -> Answer<User> {
        let user = self.users.find_by_email(&request.into_inner().email).await?;
        Ok(Response::new(user_to_proto(user)))
    }

    async fn list_memberships(&self, request: Request<ListMembershipsRequest>) -> Answer<ListMembershipsResponse> {
        // An id that is not one of ours has no memberships.
        let memberships = match UserId::parse(&request.into_inner().user_id) {
            Ok(user_id) => self.organizations.memberships_of(user_id).await?,
            Err(_) => Vec::new(),
        };
        Ok(Response::new(ListMembershipsResponse {
            memberships: memberships.into_iter().map(membership_to_proto).collect(),
        }))
    }

    async fn create_organization(&self, request: Request<CreateOrganizationRequest>) -> Answer<Organization> {
        let request = request.into_inner();
        // A bad name is answered before an unknown owner.
        let name = OrganizationName::parse(&request.name).map_err(IdentityError::from)?;
        let owner = UserId::parse(&request.owner_user_id).map_err(|_| IdentityError::UserNotFound)?;
        let (id, name) = self.organizations.create(owner, name).await?;
        Ok(Response::new(Organization { id: id.to_string(), name: name.as_str().to_owned() }))
    }

    async fn add_member(&self, request: Request<AddMemberRequest>) -> Answer<Member> {
        let request = request.into_inner();
        let (actor, organization_id) = actor_and_organization(&request.actor_user_id, &request.organization_id)?;
        let member = NewMember::try_from(&request);
        let added = self.organizations.add_member(actor, organization_id, member).await?;
        Ok(Response::new(Member {
            organization_id: added.organization_id.to_string(),
            user_id: added.user.id.to_string(),
            email: added.user.email,
            role: added.role.as_str().to_owned(),
            display_name: added.user.display_name,
        }))
    }

    async fn list_members(&self, request: Request<ListMembersRequest>) -> Answer<ListMembersResponse> {
        let request = request.into_inner();
        let (actor, organization_id) = actor_and_organization(&request.actor_user_id, &request.organization_id)?;
        let members = self.organizations.members(actor, organization_id).await?;
        let organization_id = organization_id.to_string();
        Ok(Response::new(ListMembersResponse {
            members: members
                .into_iter()
                .map(|m| Member {
                    organization_id: organization_id.clone(),
                    user_id: m.user_id,
                    email: m.email,
                    role: m.role,
                    display_name: m.display_name,
                })
                .collect(),
        }))
    }

    async fn get_jwks(&self, _request: Request<GetJwksRequest>) -> Answer<Jwks> {
        Ok(Response::new(Jwks { json: self.tokens.jwks_json() }))
    }
}

/// The actor and the organization named by a request: ids that are not ours name no
/// organization one is in.
fn actor_and_organization(actor: &str, organization: &str) -> Result<(UserId, OrganizationId), IdentityError> {
    let actor = UserId::parse(actor).map_err(|_| IdentityError::OrganizationNotFound)?;
    let organization = OrganizationId::parse(organization).map_err(|_| IdentityError::OrganizationNotFound)?;
    Ok((actor, organization))
}

fn user_to_proto(user: UserRow) -> User {
    User { id: user.id.to_string(), email: user.email, display_name: user.display_name }
}

fn membership_to_proto(membership: MembershipRow) -> OrganizationMembership {
    OrganizationMembership { organization_id: membership.organization_id, name: membership.name, role: membership.role }
}

fn token_pair(session: Session) -> TokenPair {
    TokenPair {
        access_token: session.access_token,
        token_type: "Bearer".into(),
        expires_in: session.expires_in,
        refresh_token: session.refresh_token,
    }
}
