//! The untimed part: an organizer with an organization, an event whose tickets are spread over
//! the ticket types, published, and the buyers, registered and logged in.

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

/// What the race is for.
#[derive(Debug, Clone)]
pub struct Sale {
    pub organizer: Buyer,
    pub organization_id: String,
    pub event_id: String,
    /// Each ticket type's id and capacity.
    pub ticket_types: Vec<(String, i64)>,
    pub buyers: Vec<Buyer>,
}

impl Sale {
    pub fn capacity(&self) -> i64 {
        self.ticket_types.iter().map(|(_, capacity)| capacity).sum()
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
    let email = format!("{who}-{run}@bench.eventhive.dev");
    let body = json!({"email": email, "password": PASSWORD, "display_name": who});
    api.expect("/v1/auth/register", None, &body, 201).await?;
    sign_in(api, &email).await
}

/// Logs an account the benchmark registered in again: a fresh access token for a long run.
pub async fn sign_in(api: &Api, email: &str) -> anyhow::Result<Buyer> {
    let tokens = api.expect("/v1/auth/login", None, &json!({"email": email, "password": PASSWORD}), 200).await?;
    let token = tokens["access_token"].as_str().context("login gave no access token")?.to_owned();
    Ok(Buyer { email: email.to_owned(), token })
}

/// How many tickets, over how many types, for how many buyers.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub tickets: i64,
    pub ticket_types: usize,
    pub buyers: usize,
}

/// The price of every ticket the benchmark sells, in minor units.
pub const PRICE_MINOR: i64 = 4500;

pub async fn sale(api: &Api, options: Shape) -> anyhow::Result<Sale> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let organizer = account(api, &run, "organizer").await?;
    let token = Some(organizer.token.as_str());
    let organization = api.expect("/v1/organizations", token, &json!({"name": "Flash Sale Productions"}), 201).await?;
    let organization_id = organization["id"].as_str().context("organization without id")?.to_owned();
    let event = json!({
        "organization_id": organization_id,
        "title": "The Hit Show (flash-sale benchmark)",
        "description": "Everyone wants in, at the same minute.",
        "venue": {"name": "Ziggo Dome", "city": "Amsterdam", "country": "NL"},
        "starts_at": "2030-06-01T19:30:00Z",
        "ends_at": "2030-06-01T23:00:00Z",
        "currency": "EUR",
        "max_tickets_per_order": 1,
        "max_tickets_per_buyer": options.tickets.clamp(1, 1000),
    });
    let event = api.expect("/v1/events", token, &event, 201).await?;
    let event_id = event["id"].as_str().context("event without id")?.to_owned();
    let types = i64::try_from(options.ticket_types).unwrap_or(1);
    let mut ticket_types = Vec::with_capacity(options.ticket_types);
    for index in 0..types {
        // The remainder goes to the first types, so the capacities add up to exactly Q.
        let capacity = options.tickets / types + i64::from(index < options.tickets % types);
        let body = json!({"name": format!("Tier {}", index + 1), "price_minor": PRICE_MINOR, "capacity": capacity});
        let added = api.expect(&format!("/v1/events/{event_id}/ticket-types"), token, &body, 201).await?;
        ticket_types.push((added["id"].as_str().context("ticket type without id")?.to_owned(), capacity));
    }
    api.expect(&format!("/v1/events/{event_id}/publish"), token, &json!({}), 200).await?;
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
    Ok(Sale { organizer, organization_id, event_id, ticket_types, buyers })
}
