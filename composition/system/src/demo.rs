//! Demo data for `eventhive dev`: an organization with an organizer and door staff, a buyer,
//! and a few events on sale. It goes in through the services' own gRPC APIs, the same path as
//! real requests, and only once: a second start finds the organizer and leaves things be.

use std::time::Duration;

use anyhow::Context;
use eventhive_platform::{Settings, grpc};
use eventhive_proto::{
    catalog::{AddTicketTypeRequest, CreateEventRequest, PublishEventRequest, Venue, catalog_client::CatalogClient},
    common::{Actor, Membership},
    identity::{
        AddMemberRequest, CreateOrganizationRequest, FindUserByEmailRequest, RegisterRequest,
        identity_client::IdentityClient,
    },
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The demo password of every demo account.
pub const PASSWORD: &str = "eventhive-demo";
pub const ORGANIZER: &str = "organizer@eventhive.dev";
pub const STAFF: &str = "door@eventhive.dev";
pub const BUYER: &str = "buyer@eventhive.dev";

struct DemoEvent {
    title: &'static str,
    description: &'static str,
    venue: (&'static str, &'static str, &'static str),
    days_ahead: i64,
    hours: i64,
    ticket_types: &'static [(&'static str, i64, i64)],
    publish: bool,
}

const EVENTS: &[DemoEvent] = &[
    DemoEvent {
        title: "Aurora Nights: Live in Amsterdam",
        description: "A night of synth-pop under the northern-lights show of the Ziggo Dome.",
        venue: ("Ziggo Dome", "Amsterdam", "NL"),
        days_ahead: 30,
        hours: 4,
        ticket_types: &[("General Admission", 4500, 500), ("Golden Circle", 9500, 100), ("VIP Lounge", 18000, 20)],
        publish: true,
    },
    DemoEvent {
        title: "RustConf Europe 2027",
        description: "Two days of talks on systems programming, async Rust and fearless concurrency.",
        venue: ("Station Berlin", "Berlin", "DE"),
        days_ahead: 60,
        hours: 32,
        ticket_types: &[("Conference Pass", 39900, 800), ("Workshop Day", 24900, 120)],
        publish: true,
    },
    DemoEvent {
        title: "Jazz by the Canal",
        description: "An open-air evening of jazz standards on the Oudegracht.",
        venue: ("Tivoli Vredenburg", "Utrecht", "NL"),
        days_ahead: 14,
        hours: 3,
        ticket_types: &[("Standing", 2500, 300), ("Seated", 3900, 150)],
        publish: true,
    },
    DemoEvent {
        title: "Secret Warehouse Night",
        description: "Still a draft: only the organization's members can see it.",
        venue: ("Warehouse Elementenstraat", "Amsterdam", "NL"),
        days_ahead: 90,
        hours: 8,
        ticket_types: &[("Early Bird", 3000, 400)],
        publish: false,
    },
];

/// Seeds the demo data unless it is there already. Returns whether it seeded.
pub async fn seed(settings: &Settings) -> anyhow::Result<bool> {
    let deadline = Duration::from_millis(settings.grpc_deadline_ms);
    let secrets = eventhive_platform::Secrets::load(settings)?;
    let mut identity = IdentityClient::new(grpc::channel(&settings.endpoint("identity")?, deadline, &secrets)?);
    let mut catalog = CatalogClient::new(grpc::channel(&settings.endpoint("catalog")?, deadline, &secrets)?);

    if identity.find_user_by_email(FindUserByEmailRequest { email: ORGANIZER.into() }).await.is_ok() {
        return Ok(false);
    }
    let register = |email: &str, name: &str| RegisterRequest {
        email: email.into(),
        password: PASSWORD.into(),
        display_name: name.into(),
    };
    let organizer =
        identity.register(register(ORGANIZER, "Olivia Organizer")).await.context("demo organizer")?.into_inner();
    identity.register(register(STAFF, "Dana Door")).await.context("demo staff")?;
    identity.register(register(BUYER, "Bob Buyer")).await.context("demo buyer")?;
    let organization = identity
        .create_organization(CreateOrganizationRequest {
            owner_user_id: organizer.id.clone(),
            name: "Hive Live Productions".into(),
        })
        .await
        .context("demo organization")?
        .into_inner();
    identity
        .add_member(AddMemberRequest {
            actor_user_id: organizer.id.clone(),
            organization_id: organization.id.clone(),
            email: STAFF.into(),
            role: "staff".into(),
        })
        .await
        .context("demo staff membership")?;

    let actor = Actor {
        user_id: organizer.id,
        memberships: vec![Membership { organization_id: organization.id.clone(), role: "owner".into() }],
    };
    let today = OffsetDateTime::now_utc().replace_time(time::macros::time!(19:30));
    for demo in EVENTS {
        let starts_at = today + time::Duration::days(demo.days_ahead);
        let ends_at = starts_at + time::Duration::hours(demo.hours);
        let event = catalog
            .create_event(CreateEventRequest {
                actor: Some(actor.clone()),
                organization_id: organization.id.clone(),
                title: demo.title.into(),
                description: demo.description.into(),
                venue: Some(Venue {
                    name: demo.venue.0.into(),
                    city: demo.venue.1.into(),
                    country: demo.venue.2.into(),
                }),
                starts_at: starts_at.format(&Rfc3339)?,
                ends_at: ends_at.format(&Rfc3339)?,
                currency: "EUR".into(),
                max_tickets_per_order: Some(10),
                max_tickets_per_buyer: Some(10),
            })
            .await
            .with_context(|| format!("demo event {}", demo.title))?
            .into_inner();
        for (name, price_minor, capacity) in demo.ticket_types {
            catalog
                .add_ticket_type(AddTicketTypeRequest {
                    actor: Some(actor.clone()),
                    event_id: event.id.clone(),
                    name: (*name).into(),
                    price_minor: *price_minor,
                    capacity: *capacity,
                })
                .await
                .with_context(|| format!("demo ticket type {name}"))?;
        }
        if demo.publish {
            catalog
                .publish_event(PublishEventRequest { actor: Some(actor.clone()), event_id: event.id })
                .await
                .with_context(|| format!("publishing {}", demo.title))?;
        }
    }
    Ok(true)
}
