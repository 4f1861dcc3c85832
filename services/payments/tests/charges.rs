//! Charging and refunding against a real database, on both backends: every test card, at
//! most one capture per order under replays and concurrency, idempotency keys, refunds.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

on_both_backends!(
    each_test_card_gets_its_answer,
    invalid_input_names_its_fields,
    a_replayed_charge_of_a_captured_order_charges_nothing_new,
    twenty_concurrent_charges_of_one_order_capture_exactly_once,
    the_transient_card_is_captured_on_the_second_attempt,
    a_declined_order_can_be_charged_later_with_a_good_card,
    a_replayed_decline_answers_the_same_decline,
    an_idempotency_key_belongs_to_one_charge,
    refunding_twice_refunds_once,
    only_a_captured_payment_is_refunded,
    the_payment_for_an_order_prefers_the_live_one,
);

async fn each_test_card_gets_its_answer(backend: Backend) {
    let app = TestPayments::new(backend).await;

    let order = new_order();
    let paid = app.charge(&order, test_cards::SUCCEEDS, "k-success").await;
    assert_eq!(paid.status, "captured");
    assert_eq!(paid.order_id, order);
    assert_eq!(paid.decline_code, "");
    assert_eq!((paid.card_last4.as_str(), paid.card_brand.as_str()), ("4242", "visa"));
    assert_eq!(paid.amount, Some(Money { amount_minor: 4200, currency: "EUR".into() }));
    assert_eq!(paid.attempts, 1);
    assert!(paid.created_at.ends_with('Z'), "{}", paid.created_at);

    for (number, code) in
        [(test_cards::DECLINED, "card_declined"), (test_cards::INSUFFICIENT_FUNDS, "insufficient_funds")]
    {
        let payment = app.charge(&new_order(), number, "").await;
        assert_eq!((payment.status.as_str(), payment.decline_code.as_str()), ("declined", code), "{number}");
        assert_eq!(payment.attempts, 1);
    }

    let transient = app.charge(&new_order(), test_cards::FAILS_FIRST_CALL, "").await;
    assert_eq!((transient.status.as_str(), transient.attempts), ("captured", 2));

    let mastercard = app.charge(&new_order(), "5555555555554444", "").await;
    assert_eq!((mastercard.status.as_str(), mastercard.card_brand.as_str()), ("captured", "mastercard"));

    let expired = ChargeRequest {
        card: Some(Card { exp_month: 1, exp_year: 2020, ..card(test_cards::SUCCEEDS) }),
        ..charge_request(&new_order(), test_cards::SUCCEEDS, "")
    };
    let payment = app.service.charge(expired).await.unwrap();
    assert_eq!((payment.status.as_str(), payment.decline_code.as_str()), ("declined", "expired_card"));

    // Neither the number nor the CVC is kept anywhere.
    let leaked =
        app.count("SELECT COUNT(*) FROM payments WHERE card_last4 LIKE '%424242%' OR card_brand LIKE '%424242%'").await;
    assert_eq!(leaked, 0);
}

async fn invalid_input_names_its_fields(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let request = ChargeRequest {
        order_id: "order-1".into(),
        amount: Some(Money { amount_minor: -5, currency: "XYZ".into() }),
        card: Some(Card { number: "4242424242424241".into(), exp_month: 0, exp_year: 1999, cvc: "1".into() }),
        idempotency_key: String::new(),
    };
    assert_eq!(
        fields(app.service.charge(request).await.unwrap_err()),
        [
            "order_id",
            "amount.amount_minor",
            "amount.currency",
            "card.number",
            "card.exp_month",
            "card.exp_year",
            "card.cvc"
        ]
    );
    let letters = charge_request(&new_order(), "4242abcd42424242", "");
    assert_eq!(fields(app.service.charge(letters).await.unwrap_err()), ["card.number"]);
    let refund = RefundRequest { order_id: "nope".into(), reason: String::new() };
    assert_eq!(fields(app.service.refund(refund).await.unwrap_err()), ["order_id"]);
    let get = GetPaymentForOrderRequest { order_id: String::new() };
    assert_eq!(fields(app.service.payment_for_order(get).await.unwrap_err()), ["order_id"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
}

async fn a_replayed_charge_of_a_captured_order_charges_nothing_new(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let first = app.charge(&order, test_cards::SUCCEEDS, "k1").await;
    let same_key = app.charge(&order, test_cards::SUCCEEDS, "k1").await;
    let other_key = app.charge(&order, test_cards::SUCCEEDS, "k2").await;
    let no_key = app.charge(&order, "5555555555554444", "").await;
    for replay in [&same_key, &other_key, &no_key] {
        assert_eq!(replay.id, first.id);
        assert_eq!(replay.status, "captured");
    }
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.captured_payments(&order).await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_attempts").await, 1, "replays call no processor");
}

async fn twenty_concurrent_charges_of_one_order_capture_exactly_once(backend: Backend) {
    // A slow processor keeps the first charge in flight while the others arrive.
    let app = TestPayments::with_processor_settings(backend, Duration::from_millis(20), 0.0).await;
    let order = new_order();
    let mut charges = tokio::task::JoinSet::new();
    for i in 0..20 {
        let service = app.service.clone();
        // Half of them replay one key, half bring their own.
        let key = if i % 2 == 0 { "shared".to_owned() } else { format!("own-{i}") };
        let request = charge_request(&order, test_cards::SUCCEEDS, &key);
        charges.spawn(async move { service.charge(request).await });
    }
    let mut ids = Vec::new();
    while let Some(answer) = charges.join_next().await {
        let payment = answer.unwrap().unwrap();
        assert_eq!(payment.status, "captured");
        ids.push(payment.id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "every caller sees the one payment");
    assert_eq!(app.captured_payments(&order).await, 1);
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
}

async fn the_transient_card_is_captured_on_the_second_attempt(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let payment = app.charge(&order, test_cards::FAILS_FIRST_CALL, "k-transient").await;
    assert_eq!(payment.status, "captured");
    assert_eq!(payment.attempts, 2);
    assert_eq!(app.attempt_outcomes(&payment.id).await, ["transient_error", "captured"]);
    let keys = app
        .count_for(
            "SELECT COUNT(*) FROM payment_attempts WHERE payment_id = $1 AND processor_idempotency_key = 'k-transient'",
            &payment.id,
        )
        .await;
    assert_eq!(keys, 2, "the retry asks with the same key");
    assert_eq!(app.processor_captures().await, 1);
}

async fn a_declined_order_can_be_charged_later_with_a_good_card(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let declined = app.charge(&order, test_cards::INSUFFICIENT_FUNDS, "attempt-1").await;
    assert_eq!(declined.status, "declined");
    let paid = app.charge(&order, test_cards::SUCCEEDS, "attempt-2").await;
    assert_eq!(paid.status, "captured");
    assert_ne!(paid.id, declined.id);
    assert_eq!(app.captured_payments(&order).await, 1);
    assert_eq!(app.count_for("SELECT COUNT(*) FROM payments WHERE order_id = $1", &order).await, 2);
    let current = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order }).await.unwrap();
    assert_eq!(current.id, paid.id);
}

async fn a_replayed_decline_answers_the_same_decline(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let declined = app.charge(&order, test_cards::DECLINED, "k-declined").await;
    let replay = app.charge(&order, test_cards::DECLINED, "k-declined").await;
    assert_eq!(replay.id, declined.id);
    assert_eq!(replay.decline_code, "card_declined");
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_attempts").await, 1);
}

async fn an_idempotency_key_belongs_to_one_charge(backend: Backend) {
    let app = TestPayments::new(backend).await;
    app.charge(&new_order(), test_cards::DECLINED, "k-once").await;
    let error = app.service.charge(charge_request(&new_order(), test_cards::SUCCEEDS, "k-once")).await.unwrap_err();
    assert!(matches!(error, PaymentsError::IdempotencyKeyReused), "{error:?}");
    let order = new_order();
    app.charge(&order, test_cards::DECLINED, "k-amount").await;
    let other_amount = ChargeRequest {
        amount: Some(Money { amount_minor: 1, currency: "EUR".into() }),
        ..charge_request(&order, test_cards::SUCCEEDS, "k-amount")
    };
    let error = app.service.charge(other_amount).await.unwrap_err();
    assert!(matches!(error, PaymentsError::IdempotencyKeyReused), "{error:?}");
}

async fn refunding_twice_refunds_once(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let paid = app.charge(&order, test_cards::SUCCEEDS, "").await;
    let refunded = app.service.refund(refund_request(&order)).await.unwrap();
    assert_eq!((refunded.id.as_str(), refunded.status.as_str()), (paid.id.as_str(), "refunded"));
    let again = app.service.refund(refund_request(&order)).await.unwrap();
    assert_eq!((again.id.as_str(), again.status.as_str()), (paid.id.as_str(), "refunded"));
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM simulated_processor_charges WHERE kind = 'refund'").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payment_attempts WHERE kind = 'refund'").await, 1);
    let reason: String = sqlx::query_scalar("SELECT reason FROM refunds").fetch_one(app.db.pool()).await.unwrap();
    assert_eq!(reason, "event cancelled");
    // A refunded order is done: charging it again charges nothing.
    let charged_again = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!((charged_again.id.as_str(), charged_again.status.as_str()), (paid.id.as_str(), "refunded"));
    assert_eq!(app.processor_captures().await, 1);
}

async fn only_a_captured_payment_is_refunded(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let never_charged = app.service.refund(refund_request(&new_order())).await.unwrap_err();
    assert!(matches!(never_charged, PaymentsError::NothingToRefund), "{never_charged:?}");
    let order = new_order();
    app.charge(&order, test_cards::DECLINED, "").await;
    let declined = app.service.refund(refund_request(&order)).await.unwrap_err();
    assert!(matches!(declined, PaymentsError::NothingToRefund), "{declined:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM refunds").await, 0);
}

async fn the_payment_for_an_order_prefers_the_live_one(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let get = || app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.clone() });
    assert!(matches!(get().await.unwrap_err(), PaymentsError::NeverCharged));
    let declined = app.charge(&order, test_cards::DECLINED, "").await;
    assert_eq!(get().await.unwrap(), declined);
    let paid = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!(get().await.unwrap(), paid);
    // A decline recorded after the capture (say, a row restored from elsewhere) does not hide it.
    sqlx::query(
        "INSERT INTO payments (id, order_id, amount_minor, currency, status, decline_code, card_last4, card_brand, \
         idempotency_key, created_at, updated_at) VALUES ($1, $2, 4200, 'EUR', 'declined', 'card_declined', '0002', \
         'visa', 'late-decline', $3, $4)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&order)
    .bind(now_ms() + 1000)
    .bind(now_ms() + 1000)
    .execute(app.db.pool())
    .await
    .unwrap();
    assert_eq!(get().await.unwrap().id, paid.id);
    // Another spelling of the same UUID is the same order.
    let upper = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.to_uppercase() }).await;
    assert_eq!(upper.unwrap().id, paid.id);
}
