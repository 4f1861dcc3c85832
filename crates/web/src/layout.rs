//! The page shell (landmarks, navigation, skip link) and the small pieces every page uses:
//! the CSRF field, alerts, money and dates in words, and the answers for failures.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use crate::{
    api::{ApiError, is_busy},
    session::Visit,
};

/// A whole page: `title` names it in the tab and for screen readers; `main` is its content.
pub fn page(visit: Option<&Visit>, title: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · EventHive" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    nav aria-label="Main" {
                        a.brand href="/" { "EventHive" }
                        ul {
                            li { a href="/" { "Events" } }
                            @if let Some(visit) = visit.filter(|v| v.signed_in()) {
                                li { a href="/my/orders" { "My orders" } }
                                li { a href="/my/tickets" { "My tickets" } }
                                li { a href="/manage" { "Organize" } }
                                li {
                                    form method="post" action="/logout" {
                                        (csrf(visit))
                                        button.link type="submit" { "Log out" }
                                    }
                                }
                            } @else {
                                li { a href="/login" { "Log in" } }
                                li { a href="/register" { "Register" } }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (main) }
                footer.site { p { "EventHive · " a href="/docs" { "API documentation" } " · " a href="/door" { "Door (staff)" } } }
            }
        }
    }
}

/// The hidden field every form carries: the browser's CSRF token.
pub fn csrf(visit: &Visit) -> Markup {
    html! { input type="hidden" name="csrf" value=(visit.csrf); }
}

/// A message the screen reader announces as soon as the page shows it.
pub fn alert(message: &str) -> Markup {
    html! { p.alert role="alert" { (message) } }
}

/// An HTML page with a status: the response of a page, as axum wants it.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

/// A page that only explains what went wrong, in words.
pub fn problem_page(status: StatusCode, title: &str, words: &str) -> Response {
    respond(
        status,
        page(
            None,
            title,
            html! {
                h1 { (title) }
                p { (words) }
                p { a href="/" { "Back to the events" } }
            },
        ),
    )
}

/// "45.00 EUR".
pub fn money(amount: &crate::pages::Money) -> String {
    eventhive_domain::money::format_minor(amount.amount_minor, &amount.currency)
}

/// "Wed 16 Dec 2026, 20:00 UTC" from an RFC 3339 time; the text itself if it does not parse.
pub fn when(rfc3339: &str) -> String {
    let format =
        format_description!("[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC");
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// A time the script counts down to: the element shows the time left, and a live region beside
/// it announces it now and then (every second would drown a screen reader). The ticking element
/// itself is hidden from screen readers, since a countdown inside a live region (the waiting
/// room's place) would otherwise be read out every second.
pub fn countdown(until: &str, label: &str) -> Markup {
    html! {
        span.countdown data-countdown=(until) data-label=(label) aria-hidden="true" {
            time datetime=(until) { "until " (when(until)) }
        }
        span.visually-hidden aria-live="polite" data-countdown-announce {}
    }
}

/// A page failed because the API said no: words for the visitor instead of an error code.
#[derive(Debug)]
pub struct Failure {
    error: ApiError,
    back: String,
}

impl Visit {
    /// The failure of this page, from an API error.
    pub fn fail(&self, error: ApiError) -> Failure {
        Failure { error, back: self.back.clone() }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match &self.error {
            ApiError::Problem(problem) if problem.status == 401 => {
                Redirect::to(&login_then(&self.back)).into_response()
            }
            ApiError::Problem(problem) if problem.status == 404 => problem_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here: the event or order may have been removed, or the link is wrong.",
            ),
            ApiError::Problem(problem) if problem.status == 403 => problem_page(
                StatusCode::FORBIDDEN,
                "Not for you",
                "This page is for the event's organization: its owner, admins and staff.",
            ),
            ApiError::Problem(problem) if is_busy(problem.status) => problem_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "EventHive is very busy right now. Wait a moment and reload the page.",
            ),
            error => {
                tracing::error!(error = ?error, "a page failed");
                problem_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "This page could not be made. Reload it in a moment; nothing you did was lost.",
                )
            }
        }
    }
}

/// The login page, then back to `page`.
pub fn login_then(page: &str) -> String {
    format!("/login?next={}", percent(page))
}

/// `next` only ever leads to a page of this site: a path, not `//elsewhere` or a URL.
pub fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') { next } else { "/" }
}

/// Percent-encodes a query value.
pub fn percent(value: &str) -> String {
    serde_urlencoded::to_string([("", value)]).map(|s| s.trim_start_matches('=').to_owned()).unwrap_or_default()
}

/// Markup from an SVG we drew ourselves.
pub fn trusted_svg(svg: String) -> Markup {
    PreEscaped(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_site() {
        assert_eq!(local_path("/my/tickets"), "/my/tickets");
        for away in ["//evil.example", "https://evil.example", "/\\evil.example", ""] {
            assert_eq!(local_path(away), "/", "{away}");
        }
        assert_eq!(login_then("/events/1?a=b"), "/login?next=%2Fevents%2F1%3Fa%3Db");
    }

    #[test]
    fn times_read_in_words() {
        assert_eq!(when("2026-12-16T20:00:00Z"), "Wed 16 Dec 2026, 20:00 UTC");
        assert_eq!(when("soon"), "soon");
    }
}
