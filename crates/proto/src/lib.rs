//! Generated gRPC code for every EventHive service contract in `proto/`.
//!
//! # Layout
//! One module per protobuf package, named after it: `eventhive::<service>::v1`. Services use
//! the `*_server` modules to implement a contract and the `*_client` modules to call one.

#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

pub mod eventhive {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("eventhive.common.v1");
        }
    }
    pub mod identity {
        pub mod v1 {
            tonic::include_proto!("eventhive.identity.v1");
        }
    }
    pub mod catalog {
        pub mod v1 {
            tonic::include_proto!("eventhive.catalog.v1");
        }
    }
    pub mod ticketing {
        pub mod v1 {
            tonic::include_proto!("eventhive.ticketing.v1");
        }
    }
    pub mod payments {
        pub mod v1 {
            tonic::include_proto!("eventhive.payments.v1");
        }
    }
    pub mod notifications {
        pub mod v1 {
            tonic::include_proto!("eventhive.notifications.v1");
        }
    }
    pub mod analytics {
        pub mod v1 {
            tonic::include_proto!("eventhive.analytics.v1");
        }
    }
    pub mod waiting_room {
        pub mod v1 {
            tonic::include_proto!("eventhive.waiting_room.v1");
        }
    }
}

pub use eventhive::{
    analytics::v1 as analytics, catalog::v1 as catalog, common::v1 as common, identity::v1 as identity,
    notifications::v1 as notifications, payments::v1 as payments, ticketing::v1 as ticketing,
    waiting_room::v1 as waiting_room,
};
