//! The OpenAPI 3.1 document, generated from the route annotations and wire types.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "EventHive API",
        version = "1",
        description = "The public REST API of EventHive, an event-ticketing platform. Errors are RFC 9457 problem+json with a stable `type` slug."
    ),
    paths(
        routes::auth::register,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::me,
        routes::organizations::create,
        routes::organizations::add_member,
        routes::organizations::members,
        routes::organizations::events,
        routes::events::create,
        routes::ticket_types::add_ticket_type,
        routes::ticket_types::update_ticket_type,
        routes::events::update,
        routes::events::publish,
        routes::events::cancel,
        routes::events::search,
        routes::events::get,
        routes::orders::place,
        routes::orders::pay,
        routes::orders::get,
        routes::orders::cancel,
        routes::orders::mine,
        routes::orders::my_tickets,
        routes::checkins::check_in,
        routes::checkins::checkin_key,
        routes::exports::event_orders,
        routes::exports::event_attendees,
        routes::analytics::get,
        routes::analytics::stream,
        routes::waiting_room::put,
        routes::waiting_room::get,
        routes::waiting_room::join,
        routes::waiting_room::place,
        routes::dev::dev_mail,
        routes::dev::dev_mail_page,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "organizations", description = "Organizations and their members"),
        (name = "events", description = "Events and ticket types"),
        (name = "orders", description = "Orders, payment and tickets"),
        (name = "check-in", description = "Checking tickets in at the door"),
        (name = "exports", description = "An event's orders and attendees, for its organization's owner and admins"),
        (name = "analytics", description = "Sales figures for organizers"),
        (name = "waiting-room", description = "An on-sale's waiting room: a fair queue and signed admissions"),
        (name = "dev", description = "Dev mode only"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}
