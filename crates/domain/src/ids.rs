//! Typed ids: an `EventId` can never be passed where an `OrderId` is expected.

/// Declares a UUID newtype that serializes as a plain UUID string.
#[macro_export]
macro_rules! new_uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7), so that ids sort by creation time.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }

            /// Parses the canonical text form; anything else is not an id of ours.
            pub fn parse(text: &str) -> Result<Self, uuid::Error> {
                uuid::Uuid::parse_str(text).map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }
    };
}

new_uuid_id!(
    /// A registered person.
    UserId
);
new_uuid_id!(
    /// An organization that runs events.
    OrganizationId
);
new_uuid_id!(
    /// An event in the catalog.
    EventId
);
new_uuid_id!(
    /// A kind of ticket of an event, with its price and capacity.
    TicketTypeId
);
new_uuid_id!(
    /// A buyer's order: held tickets, then paid ones.
    OrderId
);
new_uuid_id!(
    /// One admission.
    TicketId
);
new_uuid_id!(
    /// A domain event on the bus; consumers dedupe by it.
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = EventId::new();
        assert_eq!(EventId::parse(&id.to_string()).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert!(EventId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = UserId::new();
        let b = UserId::new();
        assert!(a.to_string() < b.to_string());
    }
}
