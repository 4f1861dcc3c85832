//! An event's orders and attendees as CSV files, for the organization's owner and admins: the
//! API's own CSV (`?format=csv`), passed through as it comes, so a large event's export is never
//! held in memory here.

use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
};

use crate::{
    Web,
    layout::{Failure, login_then},
    pages::PathId,
    session::Visit,
};

/// `GET /manage/events/{id}/orders.csv`.
pub async fn orders(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    export(&web, &visit, &event_id, "orders").await
}

/// `GET /manage/events/{id}/attendees.csv`.
pub async fn attendees(State(web): State<Web>, visit: Visit, PathId(event_id): PathId) -> Result<Response, Failure> {
    export(&web, &visit, &event_id, "attendees").await
}

async fn export(web: &Web, visit: &Visit, event_id: &str, list: &str) -> Result<Response, Failure> {
    if !visit.signed_in() {
        return Ok(Redirect::to(&login_then(&format!("/manage/events/{event_id}/edit"))).into_response());
    }
    // The API names the file (Content-Disposition) and says it is CSV.
    web.api
        .get(&visit.caller, format!("/v1/events/{event_id}/{list}?format=csv"))
        .stream()
        .await
        .map_err(|e| visit.fail(e))
}
