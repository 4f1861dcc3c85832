//! The untimed part: an organizer with an organization, one or more events among which the
//! tickets are split, each spreading its share over the ticket types, published, and the
//! buyers, registered and logged in.

use anyhow::Context;
use futures::{StreamExt, stream};
use serde_json::{Value, json};

/// The public API of the platform under test.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub url: String,
}

impl Api {
    /// POSTs `body` and returns the status and the JSON answer (`Null` if it has none).
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.post_admitted(path, token, key, None, body).await
    }

    /// As `post`, with an `Admission-Token` when given (an order behind a waiting room).
    pub async fn post_admitted(
        &self,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        admission: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.post(format!("{}{path}", self.url)).json(body);
        if let Some(admission) = admission {
            request = request.header("admission-token", admission);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.with_context(|| format!("POST {path}"))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("GET {path}"))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// GETs `path` anonymously and parses the answer only when it is not 200 (then a problem):
    /// the browsing clients share the cores with the platform, and parsing every event page
    /// would measure the driver.
    pub async fn read(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response =
            self.client.get(format!("{}{path}", self.url)).send().await.with_context(|| format!("GET {path}"))?;
        let status = response.status().as_u16();
        if status == 200 {
            response.bytes().await.with_context(|| format!("GET {path}"))?;
            return Ok((status, Value::Null));
        }
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// POSTs and insists on `expected`.
    async fn expect(&self, path: &str, token: Option<&str>, body: &Value, expected: u16) -> anyhow::Result<Value> {
        let (status, answer) = self.post(path, token, None, body).await?;
        anyhow::ensure!(status == expected, "POST {path} answered {status}: {answer}");
        Ok(answer)
    }
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct Buyer {
    pub email: String,
    pub token: String,
}

/// One published event and what it sells.
#[derive(Debug, Clone)]
pub struct OnSale {
    pub id: String,
    /// Each ticket type's id and capacity.
    pub ticket_types: Vec<(String, i64)>,
}

impl OnSale {
    pub fn capacity(&self) -> i64 {
        self.ticket_types.iter().map(|(_, capacity)| capacity).sum()
    }
}

/// What the race is for.
#[derive(Debug, Clone)]
pub struct Sale {
    pub organizer: Buyer,
    pub organization_id: String,
    /// At least one; with --events N, N on sale at once.
    pub events: Vec<OnSale>,
    pub buyers: Vec<Buyer>,
}

impl Sale {
    pub fn capacity(&self) -> i64 {
        self.events.iter().map(OnSale::capacity).sum()
    }

    /// The first event: the only one when the sale has a single event, as the chaos
    /// scenarios, the waiting room and the live streams use it.
    pub fn event(&self) -> &OnSale {
        &self.events[0]
    }

    /// The event a buyer goes for: the buyers are dealt over the events in turn, so each
    /// event has its share of the crowd.
    pub fn event_of(&self, buyer: usize) -> &OnSale {
        &self.events[buyer % self.events.len()]
    }
}

const PASSWORD: &str = "flash-sale-benchmark";

/// A new account added to the sale's organization as staff (who may read its analytics).
pub async fn staff_member(api: &Api, sale: &Sale, who: &str) -> anyhow::Result<Buyer> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let member = account(api, &run, who).await?;
    let path = format!("/v1/organizations/{}/members", sale.organization_id);
    let body = json!({"email": member.email, "role": "staff"});
    api.expect(&path, Some(&sale.organizer.token), &body, 201).await?;
    Ok(member)
}

async fn account(api: &Api, run: &str, who: &str) -> anyhow::Result<Buyer> {
    let email = email(run, who);
    api.expect("/v1/auth/register", None, &registration(&email, who), 201).await?;
    sign_in(api, &email).await
}

/// The address of the account `who` of the benchmark run `run`.
pub fn email(run: &str, who: &str) -> String {
    format!("{who}-{run}@bench.eventhive.dev")
}

/// The body that registers `email`.
pub fn registration(email: &str, who: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "display_name": who})
}

/// The body that logs `email` in.
pub fn credentials(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD})
}

/// Logs an account the benchmark registered in again: a fresh access token for a long run.
pub async fn sign_in(api: &Api, email: &str) -> anyhow::Result<Buyer> {
    let tokens = api.expect("/v1/auth/login", None, &credentials(email), 200).await?;
    let token = tokens["access_token"].as_str().context("login gave no access token")?.to_owned();
    Ok(Buyer { email: email.to_owned(), token })
}

/// How many tickets, over how many events and types, for how many buyers.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub tickets: i64,
    pub ticket_types: usize,
    pub buyers: usize,
    /// Events on sale at once; the tickets are split among them.
    pub events: usize,
}

/// `total` split into `parts` shares that add up to exactly `total`, the remainder going to
/// the first ones.
fn share(total: i64, parts: usize, index: usize) -> i64 {
    let parts = i64::try_from(parts.max(1)).unwrap_or(1);
    let index = i64::try_from(index).unwrap_or(0);
    total / parts + i64::from(index < total % parts)
}

/// The price of every ticket the benchmark sells, in minor units.
pub const PRICE_MINOR: i64 = 4500;

pub async fn sale(api: &Api, options: Shape) -> anyhow::Result<Sale> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let organizer = account(api, &run, "organizer").await?;
    let token = Some(organizer.token.as_str());
    let organization = api.expect("/v1/organizations", token, &json!({"name": "Flash Sale Productions"}), 201).await?;
    let organization_id = organization["id"].as_str().context("organization without id")?.to_owned();
    let mut events = Vec::with_capacity(options.events);
    for index in 0..options.events.max(1) {
        let tickets = share(options.tickets, options.events, index);
        events.push(event(api, token, &organization_id, index, tickets, options.ticket_types).await?);
    }
    // Registration hashes a password: a few at a time keeps a platform with production hashing
    // (--url) from timing out; `start` makes it cheap for the platform the benchmark runs.
    let buyers: Vec<anyhow::Result<Buyer>> = stream::iter(0..options.buyers)
        .map(|i| {
            let run = run.clone();
            async move { account(api, &run, &format!("buyer{i}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let buyers = buyers.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Sale { organizer, organization_id, events, buyers })
}

/// One event with `tickets` over `types` ticket types, published.
async fn event(
    api: &Api,
    token: Option<&str>,
    organization_id: &str,
    index: usize,
    tickets: i64,
    types: usize,
) -> anyhow::Result<OnSale> {
    let event = json!({
        "organization_id": organization_id,
        "title": format!("The Hit Show #{} (flash-sale benchmark)", index + 1),
        "description": "Everyone wants in, at the same minute.",
        "venue": {"name": "Ziggo Dome", "city": "Amsterdam", "country": "NL"},
        "starts_at": "2030-06-01T19:30:00Z",
        "ends_at": "2030-06-01T23:00:00Z",
        "currency": "EUR",
        "max_tickets_per_order": 1,
        "max_tickets_per_buyer": tickets.clamp(1, 1000),
    });
    let event = api.expect("/v1/events", token, &event, 201).await?;
    let id = event["id"].as_str().context("event without id")?.to_owned();
    let mut ticket_types = Vec::with_capacity(types);
    for index in 0..types {
        let capacity = share(tickets, types, index);
        let body = json!({"name": format!("Tier {}", index + 1), "price_minor": PRICE_MINOR, "capacity": capacity});
        let added = api.expect(&format!("/v1/events/{id}/ticket-types"), token, &body, 201).await?;
        ticket_types.push((added["id"].as_str().context("ticket type without id")?.to_owned(), capacity));
    }
    api.expect(&format!("/v1/events/{id}/publish"), token, &json!({}), 200).await?;
    Ok(OnSale { id, ticket_types })
}
