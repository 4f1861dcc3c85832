//! Register, log in, log out. The API's tokens go into the session's cookies (see `session`);
//! the pages never show them. After signing in the visitor goes back where they were (`next`,
//! a path of this site only).

use axum::{
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use crate::{
    Web,
    api::{ApiError, is_busy},
    layout::{Failure, csrf, local_path, page, percent, respond},
    session::{self, Fields, Tokens, Visit},
};

#[derive(Debug, Default, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// The values a form is shown again with (never the password).
#[derive(Default)]
struct Filled<'a> {
    email: &'a str,
    display_name: &'a str,
    next: &'a str,
}

pub async fn login_form(visit: Visit, Query(query): Query<Next>) -> Response {
    let next = local_path(query.next.as_deref().unwrap_or("/"));
    login_page(&visit, StatusCode::OK, &[], &Filled { next, ..Filled::default() })
}

pub async fn register_form(visit: Visit, Query(query): Query<Next>) -> Response {
    let next = local_path(query.next.as_deref().unwrap_or("/"));
    register_page(&visit, StatusCode::OK, &[], &Filled { next, ..Filled::default() })
}

/// `POST /login`.
pub async fn login(State(web): State<Web>, visit: Visit, fields: Fields) -> Result<Response, Failure> {
    let filled = Filled { email: fields.get("email"), next: local_path(fields.get("next")), ..Filled::default() };
    match sign_in(&web, &visit, filled.email, fields.get("password")).await {
        Ok(response) => Ok(response.with_next(filled.next)),
        Err(ApiError::Problem(problem)) if problem.status == 401 || problem.status == 422 => {
            let words = ["That email and password don't match an account. Check them and try again.".to_owned()];
            Ok(login_page(&visit, StatusCode::UNAUTHORIZED, &words, &filled))
        }
        Err(ApiError::Problem(problem)) if is_busy(problem.status) => {
            let words = ["Too many tries in a short time. Wait a minute, then try again.".to_owned()];
            Ok(login_page(&visit, StatusCode::TOO_MANY_REQUESTS, &words, &filled))
        }
        Err(error) => Err(visit.fail(error)),
    }
}

/// `POST /register`: creates the account and signs in.
pub async fn register(State(web): State<Web>, visit: Visit, fields: Fields) -> Result<Response, Failure> {
    let filled = Filled {
        email: fields.get("email"),
        display_name: fields.get("display_name"),
        next: local_path(fields.get("next")),
    };
    let password = fields.get("password");
    let body = json!({ "email": filled.email, "password": password, "display_name": filled.display_name });
    let words = match web.api.post(&visit.caller, "/v1/auth/register", body).done().await {
        Ok(()) => {
            return match sign_in(&web, &visit, filled.email, password).await {
                Ok(response) => Ok(response.with_next(filled.next)),
                Err(error) => Err(visit.fail(error)),
            };
        }
        Err(ApiError::Problem(problem)) if problem.kind() == "conflict" => {
            vec!["There is already an account with this email. Log in instead.".to_owned()]
        }
        Err(ApiError::Problem(problem)) if problem.kind() == "validation" => {
            problem.errors.iter().map(|e| format!("{}: {}", field_name(&e.field), e.message)).collect()
        }
        Err(error) => return Err(visit.fail(error)),
    };
    Ok(register_page(&visit, StatusCode::UNPROCESSABLE_ENTITY, &words, &filled))
}

/// `POST /logout`: revokes the refresh token and forgets the session.
pub async fn logout(State(web): State<Web>, visit: Visit) -> Response {
    if let Some(refresh) = &visit.refresh
        && let Err(error) =
            web.api.post(&visit.caller, "/v1/auth/logout", json!({ "refresh_token": refresh })).done().await
    {
        // The cookies go anyway; a token that could not be revoked expires by itself.
        tracing::warn!(error = %error, "revoking a refresh token at logout failed");
    }
    let mut response = Redirect::to("/").into_response();
    for cookie in session::signed_out(visit.secure) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A response that sets the session's cookies; where it leads is added by `with_next`.
struct SignedIn(Vec<axum::http::HeaderValue>);

impl SignedIn {
    fn with_next(self, next: &str) -> Response {
        let mut response = Redirect::to(next).into_response();
        for cookie in self.0 {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }
}

async fn sign_in(web: &Web, visit: &Visit, email: &str, password: &str) -> Result<SignedIn, ApiError> {
    let tokens: Tokens =
        web.api.post(&visit.caller, "/v1/auth/login", json!({ "email": email, "password": password })).json().await?;
    Ok(SignedIn(session::signed_in(&tokens, visit.secure).to_vec()))
}

fn field_name(field: &str) -> &str {
    match field {
        "display_name" => "Name",
        "email" => "Email",
        "password" => "Password",
        other => other,
    }
}

fn login_page(visit: &Visit, status: StatusCode, errors: &[String], filled: &Filled) -> Response {
    let fields = html! {
        p { label for="email" { "Email" } input #email name="email" type="email" autocomplete="email" required value=(filled.email); }
        p { label for="password" { "Password" } input #password name="password" type="password" autocomplete="current-password" required; }
    };
    let other = html! { "New here? " a href={ "/register?next=" (percent(filled.next)) } { "Register" } };
    let form = AccountForm { title: "Log in", action: "/login", submit: "Log in", fields, other };
    account_page(visit, status, errors, filled, form)
}

fn register_page(visit: &Visit, status: StatusCode, errors: &[String], filled: &Filled) -> Response {
    let fields = html! {
        p { label for="display_name" { "Name" } input #display_name name="display_name" type="text" autocomplete="name" required maxlength="100" value=(filled.display_name); }
        p { label for="email" { "Email" } input #email name="email" type="email" autocomplete="email" required value=(filled.email); }
        p {
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="new-password" required minlength="10" maxlength="128" aria-describedby="password-hint";
            span #password-hint .hint { "10 to 128 characters." }
        }
    };
    let other = html! { "Have an account? " a href={ "/login?next=" (percent(filled.next)) } { "Log in" } };
    let form = AccountForm { title: "Register", action: "/register", submit: "Create account", fields, other };
    account_page(visit, status, errors, filled, form)
}

/// What tells the login and the registration apart.
struct AccountForm {
    title: &'static str,
    action: &'static str,
    submit: &'static str,
    fields: Markup,
    /// The way to the other form.
    other: Markup,
}

fn account_page(visit: &Visit, status: StatusCode, errors: &[String], filled: &Filled, form: AccountForm) -> Response {
    let main = html! {
        h1 { (form.title) }
        (errors_list(errors))
        form.account method="post" action=(form.action) {
            (csrf(visit))
            input type="hidden" name="next" value=(filled.next);
            (form.fields)
            button type="submit" { (form.submit) }
        }
        p { (form.other) }
    };
    respond(status, page(Some(visit), form.title, main))
}

fn errors_list(errors: &[String]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.alert role="alert" {
                @if let [only] = errors { p { (only) } } @else { ul { @for error in errors { li { (error) } } } }
            }
        }
    }
}
