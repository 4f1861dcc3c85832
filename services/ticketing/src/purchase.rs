//! The purchase saga, orchestrated here step by step:
//!
//! 1. mark the order `authorizing` (its hold now cannot expire under the payment);
//! 2. charge the card through payments (at most one capture per order, enforced there);
//! 3. mark the order `paid`, sell its held tickets, issue the tickets and announce
//!    `OrderPaid` + `TicketsIssued` — one transaction.
//!
//! A decline or a failed charge takes the order back to `pending_payment`. A crash between
//! any two steps leaves the order `authorizing`; the sweeper (or a retry of the request) asks
//! payments what happened and finishes step 3 or takes the order back. Refunds run the same
//! way through `refunding`.

use eventhive_domain::{
    OrderId, UserId,
    events::{IssuedTicket, OrderPaid, OrderRefunded, TicketsIssued},
    rules::IdempotencyKey,
};
use eventhive_platform::{
    outbox,
    storage::{from_ms, now_ms},
};
use eventhive_proto::{
    payments::{Card, ChargeRequest, GetPaymentForOrderRequest, RefundRequest},
    ticketing::Order,
};
use tonic::Code;
use tracing::Instrument;

use crate::{
    SERVICE,
    engine::Engine,
    error::TicketingError,
    faults::FaultPoint,
    idempotency::{self, Operation, Scope, Turn},
    inventory::{self, Move},
    repository::{
        catalog,
        orders::{self, OrderRecord},
        owed_refunds, tickets as ticket_rows,
    },
    saga::{OrderEvent, OrderState},
    tickets, views,
};

type Result<T> = std::result::Result<T, TicketingError>;

/// The idempotency key of the charge for one payment request: the order and the buyer's key.
/// Payments takes keys of up to 200 characters and a buyer's key may have 255 (API.md), so a
/// key too long to fit beside the order id goes as its SHA-256 instead; the keys that fit keep
/// the form they always had, so a retry across a deploy finds its first charge.
fn charge_key(order_id: OrderId, key: &IdempotencyKey) -> String {
    let plain = format!("{order_id}:{key}", key = key.as_str());
    if plain.len() <= 200 {
        return plain;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_str().as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{order_id}:sha256:{hex}")
}

/// The payment id of an order that cost nothing: no charge exists to point at.
const NO_PAYMENT: &str = "";

/// A buyer's request to pay an order, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Payment {
    pub buyer_id: UserId,
    pub order_id: OrderId,
    pub key: IdempotencyKey,
    /// Passed on to payments as it came; payments checks it.
    pub card: Option<Card>,
}

impl Engine {
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    pub(crate) async fn pay_order(&self, request: Payment, request_id: Option<&str>) -> Result<Order> {
        let card = request.card.clone().unwrap_or_default();
        // The card as the key's fingerprint knows it: a hash keyed with the deployment's secret
        // (a plain hash of a card number is brute-forced in minutes when its first and last
        // digits are known), and never the CVC, which nothing may keep. Its form must not change
        // while keys live (24 h): a retry across a deploy must match.
        let card_text = format!("{}|{}|{}", card.number, card.exp_month, card.exp_year);
        let fingerprint = self.secrets.keyed_hash("payment-fingerprint", card_text.as_bytes());
        let operation = Operation::PayOrder { order_id: request.order_id };
        let scope = Scope::new(request.buyer_id, operation, request.key.clone(), fingerprint.as_bytes());
        // The key is claimed in a transaction of its own: the payment cannot run inside one.
        match idempotency::claim_or_wait(&self.db, &scope).await? {
            Turn::Replay(answer) => return answer,
            Turn::Owned(tx) => tx.commit().await?,
        }
        // The payment runs in a task of its own: if the caller goes away (the gateway's timeout,
        // a dropped connection), dropping this future must not stop a charge half-way and leave
        // the key claimed; the task finishes the saga and keeps the answer for the retry.
        let engine = self.clone();
        let request_id = request_id.map(str::to_owned);
        // The task stays in the request's span, so the payment is part of the request's trace.
        let span = tracing::Span::current();
        tokio::spawn(
            async move { engine.pay_and_answer(&request, &scope, request_id.as_deref()).await }.instrument(span),
        )
        .await
        .map_err(|error| anyhow::anyhow!("the payment task failed: {error}"))?
    }

    async fn pay_and_answer(&self, request: &Payment, scope: &Scope, request_id: Option<&str>) -> Result<Order> {
        let result = self.pay(request, request_id).await;
        if matches!(result, Err(TicketingError::Fault(_))) {
            // A simulated crash: leave everything as a dead process would.
            return result;
        }
        let mut conn = self.db.pool().acquire().await?;
        idempotency::finish(&mut conn, scope, &result).await?;
        result
    }

    async fn pay(&self, request: &Payment, request_id: Option<&str>) -> Result<Order> {
        let mut conn = self.db.pool().acquire().await?;
        let mut order = self.owned_order(&mut conn, request.buyer_id, request.order_id).await?;
        drop(conn);
        // At most a few rounds: each either acts or sees a state someone else just set.
        for _ in 0..3 {
            let now = now_ms();
            match order.state {
                // Paid by this request's own attempt, whose first try did not learn the outcome:
                // the paid order is its answer.
                OrderState::Paid if order.payment_key.as_deref() == Some(request.key.as_str()) => {
                    let mut conn = self.db.pool().acquire().await?;
                    return views::order(&mut conn, &order).await;
                }
                OrderState::Paid | OrderState::Refunding | OrderState::Refunded => {
                    return Err(TicketingError::Conflict("the order is paid already".into()));
                }
                OrderState::Cancelled => return Err(TicketingError::Conflict("the order is cancelled".into())),
                OrderState::Expired => return Err(TicketingError::HoldExpired),
                OrderState::Authorizing => {
                    if order.authorizing_since.is_some_and(|since| since + self.stale_after_ms > now) {
                        // Running, or its outcome is not known yet. If payments has captured it,
                        // the sale is completed now; either way the order is read again.
                        if !self.complete_if_captured(&order, request_id).await? {
                            return Err(TicketingError::PaymentInFlight);
                        }
                    } else {
                        // Abandoned by a crash: find out what happened before charging again.
                        self.resolve_payment(&order, now).await?;
                    }
                }
                OrderState::PendingPayment if order.expires_at <= now => {
                    self.expire(order.id, now).await?;
                    return Err(TicketingError::HoldExpired);
                }
                OrderState::PendingPayment => {
                    // The start checks the event's sales are open; only a refused start asks why.
                    if self.start_payment(&order, now, &request.key).await? {
                        if order.is_free() {
                            return self.complete_free(&order, request_id).await;
                        }
                        // The attempt is known by when it started (`authorizing_since`).
                        return self.charge(&order, now, request, request_id).await;
                    }
                    let mut conn = self.db.pool().acquire().await?;
                    if catalog::is_cancelled(&mut conn, order.event_id).await? {
                        return Err(TicketingError::Conflict("the event is cancelled".into()));
                    }
                }
            }
            let mut conn = self.db.pool().acquire().await?;
            order = self.owned_order(&mut conn, request.buyer_id, request.order_id).await?;
        }
        Err(TicketingError::Conflict("the order is changing; try again".into()))
    }

    /// Step 1: pending_payment → authorizing, only while the hold is valid.
    async fn start_payment(&self, order: &OrderRecord, now: i64, key: &IdempotencyKey) -> Result<bool> {
        let mut conn = self.db.pool().acquire().await?;
        orders::start_payment(&mut conn, order.id, now, key.as_str()).await
    }

    /// An order of free tickets is paid with nothing to charge: payments is not asked (it
    /// refuses a charge of 0), no card is needed, and the order carries no payment id.
    async fn complete_free(&self, order: &OrderRecord, request_id: Option<&str>) -> Result<Order> {
        let completed = self.complete_payment(order.id, NO_PAYMENT, request_id).await?;
        self.paid_order(order.id, completed).await
    }

    /// The paid order's answer: as the completing transaction built it, else as stored now
    /// (another request or the sweeper completed it).
    async fn paid_order(&self, order_id: OrderId, completed: Option<Order>) -> Result<Order> {
        if let Some(order) = completed {
            return Ok(order);
        }
        let mut conn = self.db.pool().acquire().await?;
        let paid = orders::get(&mut conn, order_id).await?;
        views::order(&mut conn, &paid).await
    }

    /// Completes an in-flight payment if payments has captured it; `false` if it has not (yet).
    async fn complete_if_captured(&self, order: &OrderRecord, request_id: Option<&str>) -> Result<bool> {
        let lookup = GetPaymentForOrderRequest { order_id: order.id.to_string() };
        match self.payments.clone().get_payment_for_order(lookup).await {
            Ok(payment) if payment.get_ref().status == "captured" => {
                self.complete_payment(order.id, &payment.get_ref().id, request_id).await?;
                Ok(true)
            }
            // Not captured, not there yet, or payments cannot say: still in flight.
            _ => Ok(false),
        }
    }

    /// Step 2 and 3, for the payment attempt that started at `attempt`.
    async fn charge(
        &self,
        order: &OrderRecord,
        attempt: i64,
        request: &Payment,
        request_id: Option<&str>,
    ) -> Result<Order> {
        self.faults.check(FaultPoint::BeforeCharge)?;
        let charge = ChargeRequest {
            order_id: order.id.to_string(),
            amount: Some(views::money(order.total_minor, &order.currency)),
            card: request.card.clone(),
            idempotency_key: charge_key(order.id, &request.key),
        };
        let payment = match self.payments.clone().charge(eventhive_platform::grpc::request(charge, request_id)).await {
            Ok(response) => response.into_inner(),
            // Refused before any charge (an invalid card): the order may be paid again.
            Err(status) if status.code() == Code::InvalidArgument => {
                self.payment_failed(order.id, attempt).await?;
                return Err(TicketingError::Upstream(status));
            }
            // Anything else (payments or the processor down, a deadline, a charge in flight)
            // leaves it unknown whether money moved: the order stays authorizing, holding its
            // tickets, until the sweeper learns the outcome from payments.
            Err(status) => {
                tracing::warn!(order_id = %order.id, %status, "payment outcome unknown; the sweeper will resolve it");
                return Err(TicketingError::Unavailable(
                    "the payment's outcome is not known yet; the order will show it shortly".into(),
                ));
            }
        };
        match payment.status.as_str() {
            "captured" => {
                self.faults.check(FaultPoint::AfterCharge)?;
                let completed = self.complete_payment(order.id, &payment.id, request_id).await?;
                self.faults.check(FaultPoint::AfterPaid)?;
                self.paid_order(order.id, completed).await
            }
            "declined" => {
                metrics::counter!("eventhive_payments_declined_total").increment(1);
                self.payment_failed(order.id, attempt).await?;
                Err(TicketingError::PaymentDeclined(payment.decline_code))
            }
            other => {
                // Pending: payments does not know yet. The sweeper resolves it.
                Err(TicketingError::Unavailable(format!("the payment is {other}; its outcome will be applied shortly")))
            }
        }
    }

    /// authorizing → pending_payment, if `attempt` is still the order's current payment
    /// attempt: the order may be paid again until it expires. `false`: a newer attempt runs.
    async fn payment_failed(&self, order_id: OrderId, attempt: i64) -> Result<bool> {
        let mut conn = self.db.pool().acquire().await?;
        orders::payment_failed(&mut conn, order_id, attempt).await
    }

    /// Step 3: authorizing → paid; the held tickets are sold and issued. Idempotent. Returns
    /// the paid order's public form when this call paid it (built from what the transaction
    /// wrote, not read back), `None` when it was paid already.
    pub(crate) async fn complete_payment(
        &self,
        order_id: OrderId,
        payment_id: &str,
        request_id: Option<&str>,
    ) -> Result<Option<Order>> {
        let mut tx = self.db.pool().begin().await?;
        let order = orders::find_for_update(&self.db, &mut tx, order_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("order vanished"))?;
        let state = order.state;
        if state.owns_tickets() || state == OrderState::Refunded {
            return Ok(None);
        }
        let from = match state {
            OrderState::Authorizing => OrderState::Authorizing,
            // Captured after a sweep took the order back (the payment call outlived the
            // stale limit): the tickets are still held, so the sale stands.
            OrderState::PendingPayment => {
                orders::transition(&mut tx, order_id, OrderState::PendingPayment, OrderEvent::PaymentStarted).await?;
                OrderState::Authorizing
            }
            // The hold is gone: a captured payment for it must be given back. That the money is
            // owed commits before anything is tried, so a failed refund call or a crash leaves a
            // row the sweeper retries until payments confirms the refund.
            OrderState::Expired | OrderState::Cancelled => {
                owed_refunds::record(
                    &mut tx,
                    order_id,
                    payment_id,
                    "the hold ended before the payment completed",
                    now_ms(),
                )
                .await?;
                tx.commit().await?;
                metrics::counter!("eventhive_refunds_owed_total").increment(1);
                tracing::warn!(%order_id, "payment captured for an order whose hold is gone; refunding");
                if let Err(error) = self.settle_owed_refund(order_id, request_id).await {
                    tracing::warn!(%order_id, error = format!("{error:#}"), "owed refund failed; the sweeper retries it");
                }
                return Err(TicketingError::HoldExpired);
            }
            _ => return Err(TicketingError::Conflict(format!("order {order_id} cannot be paid now"))),
        };
        let now = now_ms();
        // The order is locked (on SQLite, the one writer): it is still in `from`.
        orders::mark_paid(&mut tx, order_id, from, payment_id, now).await?;
        inventory::apply(&mut tx, order_id, Move::Sell).await?;
        let items = orders::items(&mut tx, order_id).await?;
        let issued = tickets::issue(&mut tx, &order, &items, now, &self.secrets).await?;
        let paid = OrderRecord { state: OrderState::Paid, paid_at: Some(now), ..order };
        let answer = views::order_of(&paid, &items, &issued);
        let summary = views::summary_of(&paid, &items);
        let rid = request_id.map(str::to_owned);
        let tickets_issued = TicketsIssued {
            order_id: summary.order_id,
            event_id: summary.event_id,
            buyer_id: summary.buyer_id,
            tickets: issued
                .into_iter()
                .map(|t| IssuedTicket {
                    ticket_id: t.id,
                    ticket_type_id: t.ticket_type_id,
                    ticket_type_name: t.ticket_type_name,
                    code: t.code,
                })
                .collect(),
        };
        outbox::enqueue(
            &mut tx,
            SERVICE,
            &OrderPaid { order: summary, payment_id: payment_id.to_owned(), paid_at: from_ms(now) },
            rid.clone(),
        )
        .await?;
        let issued_count = tickets_issued.tickets.len() as u64;
        outbox::enqueue(&mut tx, SERVICE, &tickets_issued, rid).await?;
        tx.commit().await?;
        metrics::counter!("eventhive_orders_paid_total").increment(1);
        metrics::counter!("eventhive_tickets_issued_total").increment(issued_count);
        self.relay.wake();
        Ok(Some(answer))
    }

    /// Finds out how an abandoned payment ended and moves the order on accordingly.
    pub(crate) async fn resolve_payment(&self, order: &OrderRecord, now: i64) -> Result<()> {
        if order.is_free() {
            // Nothing was charged: the crash came between the two local steps.
            return self.complete_payment(order.id, NO_PAYMENT, None).await.map(drop);
        }
        let lookup = GetPaymentForOrderRequest { order_id: order.id.to_string() };
        match self.payments.clone().get_payment_for_order(lookup).await {
            Ok(payment) => {
                let payment = payment.into_inner();
                match payment.status.as_str() {
                    "captured" | "refunded" => self.complete_payment(order.id, &payment.id, None).await.map(drop),
                    "pending" => Ok(()),
                    _ => self.abandon_payment(order, now).await,
                }
            }
            Err(status) if status.code() == Code::NotFound => self.abandon_payment(order, now).await,
            Err(status) => Err(TicketingError::Upstream(status)),
        }
    }

    /// The charge never happened: the order is payable again, or expires if its time is up.
    /// Only the attempt `order` was read in is abandoned; a newer one is left to run.
    async fn abandon_payment(&self, order: &OrderRecord, now: i64) -> Result<()> {
        let Some(attempt) = order.authorizing_since else { return Ok(()) };
        if self.payment_failed(order.id, attempt).await? && order.expires_at <= now {
            self.expire(order.id, now).await?;
        }
        Ok(())
    }

    /// Refunds a paid order: paid → refunding → (refund) → refunded, tickets void and back on
    /// sale. `used_refuses`: a buyer's own cancel is refused (409) once a ticket of the order was
    /// checked in; an organizer's cancel of the whole event refunds everyone.
    pub(crate) async fn refund_order(
        &self,
        order_id: OrderId,
        reason: &str,
        used_refuses: bool,
        request_id: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.db.pool().begin().await?;
        // The order's lock, which a check-in takes too, orders the two.
        let order = orders::find_for_update(&self.db, &mut tx, order_id).await?;
        if used_refuses
            && order.is_some_and(|order| order.state == OrderState::Paid)
            && ticket_rows::any_checked_in(&mut tx, order_id).await?
        {
            return Err(TicketingError::Conflict(
                "a ticket of this order was checked in; the order can no longer be refunded".into(),
            ));
        }
        let moved = orders::transition(&mut tx, order_id, OrderState::Paid, OrderEvent::RefundRequested).await?;
        if moved {
            orders::set_closed_reason(&mut tx, order_id, reason).await?;
        }
        tx.commit().await?;
        self.faults.check(FaultPoint::BeforeRefund)?;
        self.finish_refund(order_id, request_id).await
    }

    /// refunding → refunded. Safe to repeat: payments refunds once.
    pub(crate) async fn finish_refund(&self, order_id: OrderId, request_id: Option<&str>) -> Result<()> {
        let mut conn = self.db.pool().acquire().await?;
        let reason = orders::closed_reason(&mut conn, order_id).await?;
        let free = orders::get(&mut conn, order_id).await?.is_free();
        drop(conn);
        let reason = reason.unwrap_or_else(|| "refunded".into());
        if !free {
            self.refund_payment(order_id, &reason, request_id).await?;
        }
        self.faults.check(FaultPoint::AfterRefund)?;
        let mut tx = self.db.pool().begin().await?;
        let order = orders::find_for_update(&self.db, &mut tx, order_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("order vanished"))?;
        if order.state != OrderState::Refunding {
            return Ok(());
        }
        orders::transition(&mut tx, order_id, OrderState::Refunding, OrderEvent::RefundCompleted).await?;
        // The buyer's total before the shards, as a hold takes them (see `close_unpaid`).
        orders::release_buyer_quota(&mut tx, &order).await?;
        inventory::apply(&mut tx, order_id, Move::Restock).await?;
        ticket_rows::void_of_order(&mut tx, order_id).await?;
        let summary = views::summary(&mut tx, &order).await?;
        outbox::enqueue(&mut tx, SERVICE, &OrderRefunded { order: summary, reason }, request_id.map(str::to_owned))
            .await?;
        tx.commit().await?;
        metrics::counter!("eventhive_orders_refunded_total").increment(1);
        self.relay.wake();
        Ok(())
    }

    /// Refunds the payment of an ended order recorded in `owed_refunds`, and closes the record
    /// once payments confirmed it. Safe to repeat: payments refunds a payment once.
    pub(crate) async fn settle_owed_refund(&self, order_id: OrderId, request_id: Option<&str>) -> Result<()> {
        let mut conn = self.db.pool().acquire().await?;
        let Some(owed) = owed_refunds::open(&mut conn, order_id).await? else { return Ok(()) };
        drop(conn);
        let result = self.refund_payment(order_id, &owed.reason, request_id).await;
        let mut conn = self.db.pool().acquire().await?;
        match &result {
            Ok(()) => owed_refunds::settled(&mut conn, order_id, now_ms()).await?,
            Err(error) => owed_refunds::failed(&mut conn, order_id, &format!("{error:#}")).await?,
        }
        result
    }

    async fn refund_payment(&self, order_id: OrderId, reason: &str, request_id: Option<&str>) -> Result<()> {
        let refund = RefundRequest { order_id: order_id.to_string(), reason: reason.to_owned() };
        self.payments
            .clone()
            .refund(eventhive_platform::grpc::request(refund, request_id))
            .await
            .map_err(TicketingError::Upstream)?;
        Ok(())
    }
}
