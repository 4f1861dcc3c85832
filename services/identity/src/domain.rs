//! Identity's domain types, parsed once from the wire so the rest of the service can trust them.

use eventhive_platform::FieldError;
use eventhive_proto::identity::{AddMemberRequest, RegisterRequest};

/// An email address as people type it; compared by its lower-cased form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim();
        let invalid = || FieldError::new("email", "must be an email address such as ada@example.com");
        if email.is_empty() || email.len() > 254 || email.chars().any(char::is_whitespace) {
            return Err(invalid());
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn normalized(&self) -> String {
        Self::normalize(&self.0)
    }

    /// The form emails are compared by, also of text that is not a valid email (a login with
    /// it simply finds no account).
    pub fn normalize(raw: &str) -> String {
        raw.trim().to_lowercase()
    }
}

/// A new password: 10 to 128 characters (NIST 800-63B: length over composition rules).
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let length = raw.chars().count();
        if !(10..=128).contains(&length) {
            return Err(FieldError::new("password", "must be 10 to 128 characters long"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// A name shown to others: 1 to 100 characters after trimming.
#[derive(Debug, Clone)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let length = name.chars().count();
        if !(1..=100).contains(&length) || name.chars().any(char::is_control) {
            return Err(FieldError::new("display_name", "must be 1 to 100 characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organization's name: 1 to 200 characters after trimming.
#[derive(Debug, Clone)]
pub struct OrganizationName(String);

impl OrganizationName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let length = name.chars().count();
        if !(1..=200).contains(&length) || name.chars().any(char::is_control) {
            return Err(FieldError::new("name", "must be 1 to 200 characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sign-up, every field checked.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub password: NewPassword,
    pub display_name: DisplayName,
}

impl TryFrom<&RegisterRequest> for NewUser {
    /// Every invalid field, in the order of the form.
    type Error = Vec<FieldError>;

    fn try_from(request: &RegisterRequest) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let email = Email::parse(&request.email).map_err(|e| errors.push(e)).ok();
        let password = NewPassword::parse(&request.password).map_err(|e| errors.push(e)).ok();
        let display_name = DisplayName::parse(&request.display_name).map_err(|e| errors.push(e)).ok();
        match (email, password, display_name) {
            (Some(email), Some(password), Some(display_name)) => Ok(Self { email, password, display_name }),
            _ => Err(errors),
        }
    }
}

/// Whom an owner or admin adds to their organization, and as what.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub email: Email,
    pub role: Role,
}

impl TryFrom<&AddMemberRequest> for NewMember {
    type Error = Vec<FieldError>;

    fn try_from(request: &AddMemberRequest) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let role = Role::parse_grantable(&request.role).map_err(|e| errors.push(e)).ok();
        let email = Email::parse(&request.email).map_err(|e| errors.push(e)).ok();
        match (role, email) {
            (Some(role), Some(email)) => Ok(Self { email, role }),
            _ => Err(errors),
        }
    }
}

/// What a member may do in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Created the organization; manages everything, members included.
    Owner,
    /// Manages events and members.
    Admin,
    /// Checks tickets in at the door.
    Staff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Staff => "staff",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "staff" => Some(Self::Staff),
            _ => None,
        }
    }

    /// A role that can be granted to someone else. Ownership is never granted: it belongs to
    /// whoever created the organization.
    pub fn parse_grantable(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "admin" => Ok(Self::Admin),
            "staff" => Ok(Self::Staff),
            _ => Err(FieldError::new("role", "must be admin or staff")),
        }
    }

    pub fn manages_members(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_compared_case_insensitively() {
        assert_eq!(Email::parse(" Ada@Example.COM ").unwrap().normalized(), "ada@example.com");
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a da@example.com", "ada@exa mple.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("ääääääääää").is_ok());
        assert!(NewPassword::parse(&"x".repeat(129)).is_err());
        assert!(NewPassword::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn nobody_can_be_granted_ownership() {
        assert!(Role::parse_grantable("owner").is_err());
        assert!(Role::parse_grantable("ADMIN").is_err());
        assert_eq!(Role::parse_grantable("staff").unwrap(), Role::Staff);
    }
}
