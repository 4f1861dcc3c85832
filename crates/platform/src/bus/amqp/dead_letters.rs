//! Listing and replaying a queue's dead letters on RabbitMQ. A queue cannot be read at an
//! index, so both take every message of the dead-letter queue without acknowledging it (the
//! channel holds them, so none is read twice), then give back what they leave: listing gives
//! back all of them, replaying those it did not select.

use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicGetOptions, BasicNackOptions},
    types::FieldTable,
};

use super::{
    ATTEMPT_HEADER, AmqpBus, DEAD_AT_HEADER, DIRECT, ERROR_HEADER, header_int, header_text, message_properties,
    unavailable,
};
use crate::bus::{BusError, DeadLetter, Replay};

/// The dead letters of `queue`, oldest first; they stay where they are.
pub(super) async fn list(bus: &AmqpBus, queue: &str) -> Result<Vec<DeadLetter>, BusError> {
    let (connection, channel) = bus.open().await?;
    let names = bus.names(queue);
    let mut letters = Vec::new();
    let mut last_tag = None;
    while let Some(message) =
        channel.basic_get(&names.dead, BasicGetOptions { no_ack: false }).await.map_err(unavailable)?
    {
        last_tag = Some(message.delivery.delivery_tag);
        letters.push(dead_letter(queue, &message.delivery));
    }
    if let Some(tag) = last_tag {
        channel.basic_nack(tag, BasicNackOptions { multiple: true, requeue: true }).await.map_err(unavailable)?;
    }
    crate::bus::record_dead_letters(queue, letters.len());
    let _ = channel.close(200, "listed").await;
    let _ = connection.close(200, "listed").await;
    Ok(letters)
}

/// Publishes the dead letters of `queue` that `which` selects back onto it, with their attempts
/// and first failure forgotten, and removes them from the dead-letter queue.
pub(super) async fn replay(bus: &AmqpBus, queue: &str, which: &Replay) -> Result<usize, BusError> {
    let (connection, channel) = bus.open().await?;
    let names = bus.names(queue);
    let mut replayed = 0;
    let mut kept = Vec::new();
    let result = async {
        while let Some(message) =
            channel.basic_get(&names.dead, BasicGetOptions { no_ack: false }).await.map_err(unavailable)?
        {
            let delivery = message.delivery;
            if !which.selects(&dead_letter(queue, &delivery).id) {
                kept.push(delivery.delivery_tag);
                continue;
            }
            let properties = message_properties(&delivery, FieldTable::default());
            bus.publish_bytes(DIRECT, &names.queue, &delivery.data, properties).await?;
            delivery.ack(BasicAckOptions::default()).await.map_err(unavailable)?;
            replayed += 1;
        }
        Ok::<_, BusError>(())
    }
    .await;
    for tag in &kept {
        channel.basic_nack(*tag, BasicNackOptions { multiple: false, requeue: true }).await.map_err(unavailable)?;
    }
    crate::bus::record_dead_letters(queue, kept.len());
    let _ = channel.close(200, "replayed").await;
    let _ = connection.close(200, "replayed").await;
    result.map(|()| replayed)
}

/// A message of a dead-letter queue as an operator sees it.
fn dead_letter(queue: &str, delivery: &Delivery) -> DeadLetter {
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    let body = String::from_utf8_lossy(&delivery.data).into_owned();
    let envelope = serde_json::from_slice::<eventhive_domain::events::Envelope>(&delivery.data).ok();
    let id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| envelope.as_ref().map(|e| e.id.to_string()))
        .unwrap_or_else(|| format!("unidentified-{}", delivery.delivery_tag));
    let routing_key = delivery
        .properties
        .kind()
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| envelope.as_ref().map(|e| e.routing_key.clone()))
        .unwrap_or_default();
    DeadLetter {
        queue: queue.to_owned(),
        id,
        routing_key,
        body,
        // Without our header, the broker parked it itself (a rejection).
        reason: header_text(&headers, ERROR_HEADER).unwrap_or_else(|| "rejected by the broker".to_owned()),
        attempts: header_int(&headers, ATTEMPT_HEADER).and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
        dead_at: header_int(&headers, DEAD_AT_HEADER),
    }
}
