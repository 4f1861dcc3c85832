//! `/manage`, the organizer's home: each of the caller's organizations with its events (drafts
//! and cancelled ones too) and its members; owners and admins add members and create events
//! there, and anyone creates an organization of their own.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{
    ManagedEvent, Me, Organization,
    form::{Errors, Input, select},
    status_words,
};
use crate::{
    Web,
    api::ApiError,
    layout::{Failure, csrf, login_then, page, respond, when},
    pages::{Page, PathId},
    session::{Fields, Visit},
};

/// A member of an organization, as the members list reads it.
#[derive(Debug, Deserialize)]
struct Member {
    email: String,
    display_name: String,
    role: String,
}

#[derive(Debug, Deserialize)]
struct Members {
    items: Vec<Member>,
}

/// What the page shows again after a form was refused: which form, what was typed, and why.
#[derive(Default)]
struct Refused<'a> {
    /// The organization whose add-member form it was; `None` for the new organization's.
    organization: Option<&'a str>,
    errors: Errors,
    fields: Option<&'a Fields>,
}

impl Refused<'_> {
    fn value(&self, name: &str) -> &str {
        self.fields.map(|f| f.get(name)).unwrap_or_default()
    }
}

/// `GET /manage`.
pub async fn show(State(web): State<Web>, visit: Visit) -> Result<Response, Failure> {
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then("/manage")).into_response());
    }
    home_page(&web, &visit, StatusCode::OK, &Refused::default()).await
}

/// `POST /manage/organizations`: a new organization, owned by the caller.
pub async fn create_organization(State(web): State<Web>, visit: Visit, fields: Fields) -> Result<Response, Failure> {
    let body = json!({ "name": fields.get("name") });
    match web.api.post(&visit.caller, "/v1/organizations", body).done().await {
        Ok(()) => Ok(Redirect::to("/manage").into_response()),
        Err(ApiError::Problem(problem)) if problem.kind() == "validation" => {
            let errors = Errors::from_problem(&problem, |field| (field == "name").then_some(("name", "The name")));
            let refused = Refused { organization: None, errors, fields: Some(&fields) };
            home_page(&web, &visit, StatusCode::UNPROCESSABLE_ENTITY, &refused).await
        }
        Err(error) => Err(visit.fail(error)),
    }
}

/// `POST /manage/organizations/{id}/members`: adds a registered user as admin or staff.
pub async fn add_member(
    State(web): State<Web>,
    visit: Visit,
    PathId(organization_id): PathId,
    fields: Fields,
) -> Result<Response, Failure> {
    let email = fields.get("email");
    let body = json!({ "email": email, "role": fields.get("role") });
    let path = format!("/v1/organizations/{organization_id}/members");
    let email_id = format!("email-{organization_id}");
    let role_id = format!("role-{organization_id}");
    let mut errors = Errors::default();
    let status = match web.api.post(&visit.caller, path, body).done().await {
        Ok(()) => return Ok(Redirect::to(&format!("/manage#org-{organization_id}")).into_response()),
        Err(ApiError::Problem(problem)) if problem.kind() == "validation" => {
            for error in &problem.errors {
                match error.field.as_str() {
                    "email" if error.message.contains("no account") => errors.field(
                        &email_id,
                        "Nobody has an account with this email: ask them to register first, then add them.",
                    ),
                    "email" => errors.field(&email_id, "Enter an email address, like grace@example.com."),
                    "role" => errors.field(&role_id, "Choose admin or staff."),
                    _ => errors.general(format!("{}: {}.", error.field, error.message)),
                }
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(ApiError::Problem(problem)) if problem.kind() == "conflict" => {
            errors.field(&email_id, format!("{email} is a member already."));
            StatusCode::CONFLICT
        }
        Err(ApiError::Problem(problem)) if problem.status == 403 => {
            errors.general("Only the organization's owner and admins add members.");
            StatusCode::FORBIDDEN
        }
        Err(error) => return Err(visit.fail(error)),
    };
    let refused = Refused { organization: Some(&organization_id), errors, fields: Some(&fields) };
    home_page(&web, &visit, status, &refused).await
}

async fn home_page(web: &Web, visit: &Visit, status: StatusCode, refused: &Refused<'_>) -> Result<Response, Failure> {
    let me: Me = web.api.get(&visit.caller, "/v1/me").json().await.map_err(|e| visit.fail(e))?;
    let mut sections = Vec::new();
    for organization in &me.organizations {
        sections.push(organization_section(web, visit, organization, refused).await?);
    }
    let main = html! {
        h1 { "Organizer console" }
        @if me.organizations.is_empty() {
            p { "You are not in an organization yet. Create one to put events on sale; its owner adds admins and door staff." }
        }
        @for section in sections { (section) }
        (new_organization(visit, refused))
    };
    Ok(respond(status, page(Some(visit), "Organizer console", main)))
}

async fn organization_section(
    web: &Web,
    visit: &Visit,
    organization: &Organization,
    refused: &Refused<'_>,
) -> Result<Markup, Failure> {
    let id = &organization.id;
    let events: Page<ManagedEvent> = web
        .api
        .get(&visit.caller, format!("/v1/organizations/{id}/events?page_size=100"))
        .json()
        .await
        .map_err(|e| visit.fail(e))?;
    let members: Members = web
        .api
        .get(&visit.caller, format!("/v1/organizations/{id}/members"))
        .json()
        .await
        .map_err(|e| visit.fail(e))?;
    let heading = format!("org-{id}");
    let ours = refused.organization == Some(id.as_str());
    Ok(html! {
        section.organization aria-labelledby=(heading) {
            h2 id=(heading) { (organization.name) }
            p.hint { "Your role: " (organization.role) }
            h3 { "Events" }
            @if events.items.is_empty() {
                p { "No events yet." }
            } @else {
                table.events {
                    thead { tr { th scope="col" { "Event" } th scope="col" { "Starts" } th scope="col" { "Status" } th scope="col" { "Go to" } } }
                    tbody {
                        @for event in &events.items {
                            tr {
                                th scope="row" { (event.title) }
                                td { (when(&event.starts_at)) }
                                td { (status_words(&event.status)) }
                                td.links {
                                    a href={ "/manage/events/" (event.id) "/edit" } aria-label={ "Edit " (event.title) } { "Edit" } " "
                                    a href={ "/manage/events/" (event.id) } aria-label={ "Live figures of " (event.title) } { "Live figures" } " "
                                    a href={ "/door/" (event.id) } aria-label={ "Door of " (event.title) } { "Door" }
                                }
                            }
                        }
                    }
                }
            }
            @if organization.manages() {
                p { a.button href={ "/manage/organizations/" (id) "/events/new" } { "New event" } }
            }
            h3 { "Members" }
            ul.members {
                @for member in &members.items {
                    li { (member.display_name) " · " (member.email) " · " strong { (member.role) } }
                }
            }
            @if organization.manages() {
                (add_member_form(visit, organization, ours.then_some(refused)))
            }
        }
    })
}

fn add_member_form(visit: &Visit, organization: &Organization, refused: Option<&Refused<'_>>) -> Markup {
    let id = &organization.id;
    let (email_id, role_id, legend) = (format!("email-{id}"), format!("role-{id}"), format!("legend-{id}"));
    let none = Errors::default();
    let errors = refused.map_or(&none, |r| &r.errors);
    let email = refused.map(|r| r.value("email")).unwrap_or_default();
    let role = refused.map(|r| r.value("role")).filter(|r| !r.is_empty()).unwrap_or("staff");
    html! {
        form.member method="post" action={ "/manage/organizations/" (id) "/members" } aria-labelledby=(legend) {
            (csrf(visit))
            h4 id=(legend) { "Add a member to " (organization.name) }
            (errors.summary())
            (Input::text(&email_id, "Their account's email", email).named("email").kind("email").render(errors))
            (select(errors, &Input::text(&role_id, "Role", role).named("role"), &[("staff", "Staff: checks tickets in"), ("admin", "Admin: manages events and members")]))
            button type="submit" { "Add member" }
        }
    }
}

fn new_organization(visit: &Visit, refused: &Refused<'_>) -> Markup {
    let ours = refused.organization.is_none() && refused.fields.is_some();
    let none = Errors::default();
    let errors = if ours { &refused.errors } else { &none };
    let name = if ours { refused.value("name") } else { "" };
    html! {
        section aria-labelledby="new-organization" {
            h2 #new-organization { "New organization" }
            form.organization method="post" action="/manage/organizations" {
                (csrf(visit))
                (errors.summary())
                (Input::text("name", "Organization name", name).hint("As buyers will see it, e.g. Concertgebouw Presents.").render(errors))
                button type="submit" { "Create organization" }
            }
        }
    }
}
