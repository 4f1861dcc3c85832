//! The payments gRPC service: glue from the contract to [`Charges`]. Each call parses its
//! request ([`crate::domain`]), runs one operation and answers the payment it ended with.

use std::{sync::Arc, time::Duration};

use eventhive_platform::{Database, storage::ms_to_rfc3339};
use eventhive_proto::{
    common::Money as WireMoney,
    payments::{ChargeRequest, GetPaymentForOrderRequest, Payment, RefundRequest, payments_server},
};
use tonic::{Request, Response, Status};

use crate::{
    charges::Charges,
    domain::{ChargeInput, RefundInput, parse_order_id},
    error::PaymentsError,
    processor::PaymentProcessor,
    repository::{PaymentRow, Repository},
};

type Result<T> = std::result::Result<T, PaymentsError>;

/// The `Payments` gRPC service.
#[derive(Clone)]
pub struct PaymentsService {
    charges: Charges,
}

impl PaymentsService {
    /// A service over `db` that settles abandoned pending payments after
    /// [`crate::charges::DEFAULT_SETTLE_DELAY`].
    pub fn new(db: Database, processor: Arc<dyn PaymentProcessor>) -> Self {
        Self { charges: Charges::new(Repository::new(db), processor) }
    }

    /// Changes how long a pending payment must be left alone before `GetPaymentForOrder`
    /// settles it by a lookup at the processor. Tests use zero; in production it must outlast
    /// any single processor call.
    #[must_use]
    pub fn with_settle_delay(self, settle_delay: Duration) -> Self {
        Self { charges: self.charges.with_settle_delay(settle_delay) }
    }

    /// Charges an order at most once; see [`crate::charges`] for how.
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    pub async fn charge(&self, request: ChargeRequest) -> Result<Payment> {
        let input = ChargeInput::parse(&request)?;
        Ok(payment_message(self.charges.charge(input).await?))
    }

    /// Refunds the captured payment of an order, once.
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    pub async fn refund(&self, request: RefundRequest) -> Result<Payment> {
        let input = RefundInput::parse(&request)?;
        Ok(payment_message(self.charges.refund(input).await?))
    }

    /// The payment that stands for the order, settled by a lookup at the processor first if it
    /// was left pending for the settle delay.
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    pub async fn payment_for_order(&self, request: GetPaymentForOrderRequest) -> Result<Payment> {
        let order_id = parse_order_id(&request.order_id)?;
        Ok(payment_message(self.charges.payment_for_order(order_id).await?))
    }
}

/// A stored payment as the contract shows it: never the card beyond its last four and brand.
fn payment_message(payment: PaymentRow) -> Payment {
    Payment {
        id: payment.id,
        order_id: payment.order_id,
        status: payment.status,
        amount: Some(WireMoney { amount_minor: payment.amount_minor, currency: payment.currency }),
        decline_code: payment.decline_code.unwrap_or_default(),
        card_last4: payment.card_last4,
        card_brand: payment.card_brand,
        attempts: i32::try_from(payment.attempts).unwrap_or(i32::MAX),
        created_at: ms_to_rfc3339(payment.created_at),
    }
}

#[tonic::async_trait]
impl payments_server::Payments for PaymentsService {
    async fn charge(&self, request: Request<ChargeRequest>) -> std::result::Result<Response<Payment>, Status> {
        Ok(Response::new(PaymentsService::charge(self, request.into_inner()).await?))
    }

    async fn refund(&self, request: Request<RefundRequest>) -> std::result::Result<Response<Payment>, Status> {
        Ok(Response::new(PaymentsService::refund(self, request.into_inner()).await?))
    }

    async fn get_payment_for_order(
        &self,
        request: Request<GetPaymentForOrderRequest>,
    ) -> std::result::Result<Response<Payment>, Status> {
        Ok(Response::new(self.payment_for_order(request.into_inner()).await?))
    }
}
