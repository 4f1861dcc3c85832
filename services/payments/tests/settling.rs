//! Payments whose outcome was left unknown, on both backends: a crash mid-charge, processor
//! outages and refusals, answers or requests lost on the way, settled by a lookup at the
//! processor with at most one capture; and the service over gRPC.

// Integration tests: an unwrap or panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

on_both_backends!(
    a_charge_interrupted_by_a_crash_is_settled_by_the_next_charge,
    a_processor_outage_leaves_the_payment_pending_until_it_is_settled,
    a_processor_refusal_declines_the_payment_without_blocking_the_order,
    a_payment_whose_answers_were_lost_is_settled_as_captured_by_a_lookup,
    a_payment_whose_requests_were_lost_is_declined_by_a_lookup,
    lookups_racing_charges_over_an_abandoned_payment_capture_at_most_once,
    the_application_serves_payments_over_grpc,
);

/// A crash after the processor captured and before the payment row was updated: the row is
/// pending, the money moved. The next charge asks the processor with the payment's own key and
/// learns it was captured, instead of charging again.
async fn a_charge_interrupted_by_a_crash_is_settled_by_the_next_charge(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let payment_id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO payments (id, order_id, amount_minor, currency, status, card_last4, card_brand, \
         idempotency_key, created_at, updated_at) VALUES ($1, $2, 4200, 'EUR', 'pending', '4242', 'visa', \
         'crashed-key', $3, $4)",
    )
    .bind(&payment_id)
    .bind(&order)
    .bind(now_ms())
    .bind(now_ms())
    .execute(app.db.pool())
    .await
    .unwrap();
    let command = ChargeCommand {
        idempotency_key: "crashed-key".into(),
        amount_minor: 4200,
        currency: Currency::parse("EUR").unwrap(),
        card: ParsedCard::parse(&card(test_cards::SUCCEEDS)).unwrap(),
    };
    let at_processor = app.simulated_processor().charge(command).await.unwrap();
    assert!(matches!(at_processor, ChargeOutcome::Captured { .. }));

    let seen = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.clone() }).await.unwrap();
    assert_eq!((seen.id.as_str(), seen.status.as_str()), (payment_id.as_str(), "pending"));
    // Refunding waits until the outcome is known.
    let refund = app.service.refund(refund_request(&order)).await.unwrap_err();
    assert!(matches!(refund, PaymentsError::ChargeInProgress), "{refund:?}");
    // A different card cannot settle it: that could charge a card the buyer did not pick for it.
    let error = app.service.charge(charge_request(&order, "5555555555554444", "after-crash")).await.unwrap_err();
    assert!(matches!(error, PaymentsError::ChargeInProgress), "{error:?}");

    let settled = app.charge(&order, test_cards::SUCCEEDS, "after-crash").await;
    assert_eq!((settled.id.as_str(), settled.status.as_str()), (payment_id.as_str(), "captured"));
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
}

async fn a_processor_outage_leaves_the_payment_pending_until_it_is_settled(backend: Backend) {
    let app = TestPayments::with_processor_settings(backend, Duration::ZERO, 1.0).await;
    let order = new_order();
    let error = app.charge_error(&order).await;
    assert!(matches!(error, PaymentsError::ProcessorUnavailable), "{error:?}");
    let pending = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.clone() }).await.unwrap();
    assert_eq!(pending.status, "pending", "nobody knows whether money moved");
    assert_eq!(pending.attempts, 4, "one call and three retries");
    assert_eq!(app.attempt_outcomes(&pending.id).await, ["transient_error"; 4]);

    // The processor recovers (a restart with it healthy): the next charge settles the payment.
    let recovered = app.with_processor(app.simulated_processor());
    let paid = recovered.charge(charge_request(&order, test_cards::SUCCEEDS, "retry")).await.unwrap();
    assert_eq!((paid.id.as_str(), paid.status.as_str()), (pending.id.as_str(), "captured"));
    assert_eq!(paid.attempts, 5);
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.captured_payments(&order).await, 1);
}

async fn a_processor_refusal_declines_the_payment_without_blocking_the_order(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let refusing = app.with_processor(Arc::new(RefusingProcessor));
    let order = new_order();
    let error = refusing.charge(charge_request(&order, test_cards::SUCCEEDS, "")).await.unwrap_err();
    assert!(matches!(error, PaymentsError::ProcessorRefused), "{error:?}");
    let refused = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order.clone() }).await.unwrap();
    assert_eq!((refused.status.as_str(), refused.decline_code.as_str()), ("declined", "processing_error"));
    assert_eq!(refused.attempts, 1, "a permanent error is not retried");
    assert_eq!(app.attempt_outcomes(&refused.id).await, ["error"]);

    let paid = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!(paid.status, "captured");
    // A refund the processor refuses leaves the payment captured.
    let error = refusing.refund(refund_request(&order)).await.unwrap_err();
    assert!(matches!(error, PaymentsError::ProcessorRefused), "{error:?}");
    let current = app.service.payment_for_order(GetPaymentForOrderRequest { order_id: order }).await.unwrap();
    assert_eq!(current.status, "captured");
}

/// The processor captured, but none of its answers came back: the saga that started the charge
/// crashed and never has the card again, only `GetPaymentForOrder`. Once the settle delay has
/// passed, that looks the payment's key up and stores the capture, and nothing is charged twice.
async fn a_payment_whose_answers_were_lost_is_settled_as_captured_by_a_lookup(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let error = app.with_processor(app.outage(true)).charge(charge_request(&order, test_cards::SUCCEEDS, "")).await;
    assert!(matches!(error, Err(PaymentsError::ProcessorUnavailable)), "{error:?}");
    assert_eq!(app.processor_captures().await, 1, "the processor took the money; we never heard");

    // While the outage lasts, the lookup fails too: the payment stays pending.
    let during_outage = app.settling_with(app.outage(true)).payment_for_order(get(&order)).await.unwrap();
    assert_eq!(during_outage.status, "pending");
    // Within the settle delay it is left alone, even with the processor back.
    let too_soon = app.with_processor(app.simulated_processor()).payment_for_order(get(&order)).await.unwrap();
    assert_eq!((too_soon.status.as_str(), too_soon.attempts), ("pending", 4));

    let settling = app.settling_with(app.simulated_processor());
    let settled = settling.payment_for_order(get(&order)).await.unwrap();
    assert_eq!((settled.id.as_str(), settled.status.as_str()), (during_outage.id.as_str(), "captured"));
    assert_eq!(settled.attempts, 5, "the lookup's verdict is recorded like a charge's");
    assert_eq!(
        app.attempt_outcomes(&settled.id).await,
        ["transient_error", "transient_error", "transient_error", "transient_error", "captured"]
    );
    let references = app
        .count_for(
            "SELECT COUNT(*) FROM payments p JOIN simulated_processor_charges c              ON c.idempotency_key = p.idempotency_key AND c.reference = p.processor_reference WHERE p.id = $1",
            &settled.id,
        )
        .await;
    assert_eq!(references, 1, "the processor's reference of the capture is stored");
    assert_eq!(settling.payment_for_order(get(&order)).await.unwrap(), settled, "asking again changes nothing");

    // Captured at most once: charging the order again charges nothing new, and it can be refunded.
    let again = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!((again.id.as_str(), again.status.as_str()), (settled.id.as_str(), "captured"));
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.captured_payments(&order).await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    let refunded = app.service.refund(refund_request(&order)).await.unwrap();
    assert_eq!(refunded.status, "refunded");
}

/// None of the charge requests reached the processor: a lookup finds no charge under the key, so
/// no money moved, and the payment is declined with `processing_error`, which frees the order.
async fn a_payment_whose_requests_were_lost_is_declined_by_a_lookup(backend: Backend) {
    let app = TestPayments::new(backend).await;
    let order = new_order();
    let error = app.with_processor(app.outage(false)).charge(charge_request(&order, test_cards::SUCCEEDS, "")).await;
    assert!(matches!(error, Err(PaymentsError::ProcessorUnavailable)), "{error:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM simulated_processor_charges").await, 0);

    // A lookup the processor refuses settles nothing either.
    let refused = app.settling_with(Arc::new(RefusingProcessor)).payment_for_order(get(&order)).await.unwrap();
    assert_eq!(refused.status, "pending");
    let too_soon = app.with_processor(app.simulated_processor()).payment_for_order(get(&order)).await.unwrap();
    assert_eq!(too_soon.status, "pending");

    let settling = app.settling_with(app.simulated_processor());
    let settled = settling.payment_for_order(get(&order)).await.unwrap();
    assert_eq!(
        (settled.id.as_str(), settled.status.as_str(), settled.decline_code.as_str()),
        (refused.id.as_str(), "declined", "processing_error")
    );
    assert_eq!(app.attempt_outcomes(&settled.id).await, ["transient_error"; 4], "finding nothing is no verdict");
    assert_eq!(app.processor_captures().await, 0);

    // The order is free again: it can be paid afresh, under a new key, once.
    let paid = app.charge(&order, test_cards::SUCCEEDS, "").await;
    assert_eq!(paid.status, "captured");
    assert_ne!(paid.id, settled.id);
    assert_eq!(settling.payment_for_order(get(&order)).await.unwrap().id, paid.id);
    let declined_key_charged = app
        .count_for(
            "SELECT COUNT(*) FROM simulated_processor_charges c JOIN payments p              ON p.idempotency_key = c.idempotency_key WHERE p.id = $1",
            &settled.id,
        )
        .await;
    assert_eq!(declined_key_charged, 0, "a declined payment's key is never charged");
    assert_eq!(app.processor_captures().await, 1);
    assert_eq!(app.captured_payments(&order).await, 1);
}

/// Sagas polling `GetPaymentForOrder` and buyers charging again, all at once over a payment an
/// outage left pending: whatever wins, the order is captured once, at the processor and here.
async fn lookups_racing_charges_over_an_abandoned_payment_capture_at_most_once(backend: Backend) {
    let app = TestPayments::new(backend).await;
    for (round, answers_lost) in [(1, true), (2, false)] {
        let order = new_order();
        let error =
            app.with_processor(app.outage(answers_lost)).charge(charge_request(&order, test_cards::SUCCEEDS, "")).await;
        assert!(matches!(error, Err(PaymentsError::ProcessorUnavailable)), "{error:?}");
        let pending = app.service.payment_for_order(get(&order)).await.unwrap();
        assert_eq!(pending.status, "pending");
        // Abandoned for longer than the default settle delay.
        app.age(&pending.id, Duration::from_secs(10)).await;

        // A slow processor widens the windows in which lookups and charges interleave.
        let slow = Arc::new(SimulatedProcessor::new(app.db.clone(), Duration::from_millis(5), 0.0));
        let racing = Arc::new(app.with_processor(slow));
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..16 {
            let service = racing.clone();
            let order = order.clone();
            calls.spawn(async move {
                if i % 2 == 0 {
                    service.charge(charge_request(&order, test_cards::SUCCEEDS, "")).await.map(Some)
                } else {
                    service.payment_for_order(get(&order)).await.map(|_| None)
                }
            });
        }
        while let Some(answer) = calls.join_next().await {
            if let Some(charged) = answer.unwrap().unwrap() {
                assert_eq!(charged.status, "captured", "round {round}");
            }
        }
        let standing = app.service.payment_for_order(get(&order)).await.unwrap();
        assert_eq!(standing.status, "captured", "round {round}");
        assert_eq!(app.captured_payments(&order).await, 1, "round {round}");
        assert_eq!(app.processor_captures().await, round, "round {round}: one capture per order at the processor");
        if answers_lost {
            assert_eq!(standing.id, pending.id, "the capture the processor made is the one that stands");
        }
    }
}

async fn the_application_serves_payments_over_grpc(backend: Backend) {
    telemetry::init_for_tests();
    let data_dir = tempfile::tempdir().unwrap();
    let settings = test_settings(backend, &data_dir);
    let _drop_database = DropDatabase(settings.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bus = Arc::new(eventhive_platform::bus::in_process::InProcessBus::in_memory().await.unwrap());
    let context = Context::of::<Application>(settings.clone(), listener, bus).await.unwrap();
    let app = Application::build(context).await.unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));

    let plain =
        eventhive_platform::grpc::health_channel(&format!("http://127.0.0.1:{port}"), Duration::from_secs(10)).unwrap();
    assert!(eventhive_platform::grpc::is_serving(plain.clone()).await, "health checks are open to anyone");
    // Anyone who reaches the port is not anyone: without this deployment's service token, or
    // with another deployment's, nothing is charged.
    let stranger =
        PaymentsClient::new(plain.clone()).charge(charge_request(&new_order(), test_cards::SUCCEEDS, "")).await;
    assert_eq!(stranger.unwrap_err().code(), tonic::Code::Unauthenticated);
    let other_key = Settings { secret_key: Some(Secrets::new_key_text().unwrap().into()), ..Settings::default() };
    let other = eventhive_platform::grpc::authenticated(plain.clone(), &Secrets::load(&other_key).unwrap());
    let forged = PaymentsClient::new(other).charge(charge_request(&new_order(), test_cards::SUCCEEDS, "")).await;
    assert_eq!(forged.unwrap_err().code(), tonic::Code::Unauthenticated);
    let channel = eventhive_platform::grpc::authenticated(plain, &Secrets::load(&settings).unwrap());
    let mut client = PaymentsClient::new(channel);
    let order = new_order();
    let paid = client.charge(charge_request(&order, test_cards::SUCCEEDS, "")).await.unwrap().into_inner();
    assert_eq!(paid.status, "captured");
    let declined = client.charge(charge_request(&new_order(), test_cards::DECLINED, "")).await.unwrap().into_inner();
    assert_eq!(declined.decline_code, "card_declined", "a decline is an answer, not an error");

    let invalid = client.charge(charge_request(&order, "1234", "")).await.unwrap_err();
    let problem = Problem::from_status(&invalid);
    assert_eq!(problem.slug(), "validation");
    assert_eq!(problem.errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["card.number"]);
    assert!(!invalid.message().contains("1234"), "the number is not echoed back");

    let missing = client.get_payment_for_order(GetPaymentForOrderRequest { order_id: new_order() }).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(Problem::from_status(&missing).slug(), "not-found");
    let refunded = client.refund(refund_request(&order)).await.unwrap().into_inner();
    assert_eq!(refunded.status, "refunded");

    stop.cancel();
    running.await.unwrap().unwrap();
}
