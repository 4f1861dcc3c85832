//! `eventhive keys rotate`: the services that keep private keys, asked in turn. Identity gets a
//! new token-signing key (unless only sealing); each seals its stored private keys with the
//! current secret key (identity's token keys, ticketing's event keys, the waiting room's room
//! keys).

use eventhive_platform::{Secrets, Settings};

/// One line per step, for the operator.
pub async fn rotate(settings: &Settings, seal_only: bool) -> anyhow::Result<Vec<String>> {
    let mut settings = settings.clone();
    // Beside an `eventhive dev`, its key; in production, the deployment's.
    Secrets::ensure_local_key(&mut settings)?;
    let mut report = Vec::new();
    if !seal_only {
        report.push(eventhive_identity::rotate_keys(&settings).await?);
    }
    report.push(eventhive_identity::reseal_keys(&settings).await?);
    report.push(eventhive_ticketing::reseal_keys(&settings).await?);
    report.push(eventhive_waiting_room::reseal_keys(&settings).await?);
    Ok(report)
}
