//! What a consumer does with a message its handler failed on: retry it later, for as long as
//! an outage may last, or dead-letter it at once when no retry can ever help.
//!
//! A handler's error is transient unless it says otherwise: wrap it with [`permanent`] (or
//! return a [`Permanent`]), or fail to decode the payload (an
//! [`EnvelopeError`](eventhive_domain::events::EnvelopeError) anywhere in the chain). Transient
//! failures are retried with exponential backoff and jitter until
//! [`RetryPolicy::retry_for`] has passed since the message first failed.

use std::time::Duration;

use eventhive_domain::events::EnvelopeError;
use rand::Rng;

use crate::config::Settings;

/// How long and how often a failed message is retried. Shared by every consumer of a bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry; doubles with every failure.
    pub first: Duration,
    /// The longest wait between two retries.
    pub max: Duration,
    /// How long after its first failure a message is still retried.
    pub retry_for: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::from_settings(&Settings::default())
    }
}

impl RetryPolicy {
    /// `EVENTHIVE_BUS_RETRY_FIRST_MS`, `EVENTHIVE_BUS_RETRY_MAX_MS`, `EVENTHIVE_BUS_RETRY_FOR_SECS`.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            first: Duration::from_millis(settings.bus_retry_first_ms),
            max: Duration::from_millis(settings.bus_retry_max_ms),
            retry_for: Duration::from_secs(settings.bus_retry_for_secs),
        }
    }

    /// The wait before delivery `attempt + 1` after `attempt` (1-based) failed: `first` doubled
    /// per failure, at most `max`, then a random point in its upper half, so that messages that
    /// failed together during an outage do not all come back at the same instant.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let ceiling = self.first.saturating_mul(1u32 << exponent).min(self.max);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::thread_rng().gen_range(ceiling_ms.div_ceil(2)..=ceiling_ms))
    }

    /// Whether a message that first failed at `first_failed_ms` (Unix ms) has been retried
    /// long enough, as of `now_ms`.
    pub fn gives_up(&self, first_failed_ms: i64, now_ms: i64) -> bool {
        let retry_for = i64::try_from(self.retry_for.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(first_failed_ms) >= retry_for
    }
}

/// A handler's error that no retry can cure (a message that contradicts what the consumer
/// knows, a payload it cannot read): the message is dead-lettered at once, with this reason.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Permanent(pub anyhow::Error);

/// Marks `error` as permanent (see [`Permanent`]).
pub fn permanent(error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Permanent(error.into()))
}

/// Whether anything in `error`'s chain says that retrying cannot help.
pub fn is_permanent(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Permanent>() || cause.is::<EnvelopeError>())
}

/// What becomes of a delivery after its handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Handled: acknowledge it.
    Done,
    /// Failed transiently: deliver it again after `after`.
    Retry { after: Duration, error: String },
    /// Can never succeed, or failed for longer than the policy allows: park it with `reason`.
    Dead { reason: String },
}

impl Outcome {
    /// Judges a handler's failure on delivery `attempt`, the message having first failed at
    /// `first_failed_ms` (this delivery's own failure when it is the first), as of `now_ms`.
    pub(crate) fn of_failure(
        policy: &RetryPolicy,
        error: &anyhow::Error,
        attempt: u32,
        first_failed_ms: i64,
        now_ms: i64,
    ) -> Self {
        if is_permanent(error) {
            return Self::Dead { reason: format!("permanent failure on attempt {attempt}: {error:#}") };
        }
        if policy.gives_up(first_failed_ms, now_ms) {
            let seconds = (now_ms - first_failed_ms).max(0) / 1000;
            return Self::Dead {
                reason: format!("still failing after {attempt} attempts over {seconds} s: {error:#}"),
            };
        }
        Self::Retry { after: policy.delay(attempt), error: format!("{error:#}") }
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Done => "ok",
            Self::Retry { .. } => "retry",
            Self::Dead { .. } => "dead",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_millis(200),
            max: Duration::from_secs(60),
            retry_for: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_delay_doubles_with_jitter_and_is_bounded() {
        for _ in 0..100 {
            let first = policy().delay(1);
            assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200), "{first:?}");
            let fourth = policy().delay(4);
            assert!(fourth >= Duration::from_millis(800) && fourth <= Duration::from_millis(1600), "{fourth:?}");
            let late = policy().delay(500);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60), "{late:?}");
        }
    }

    #[test]
    fn transient_failures_are_retried_for_as_long_as_configured() {
        let error = anyhow::anyhow!("connection refused");
        let start = 1_000_000;
        let minute = 60_000;
        // Far past the old five attempts in 1.5 s, still within the hour.
        assert!(matches!(
            Outcome::of_failure(&policy(), &error, 40, start, start + 59 * minute),
            Outcome::Retry { .. }
        ));
        let Outcome::Dead { reason } = Outcome::of_failure(&policy(), &error, 90, start, start + 60 * minute) else {
            panic!("an hour of failures is enough");
        };
        assert!(reason.contains("90 attempts over 3600 s: connection refused"), "{reason}");
    }

    #[test]
    fn permanent_failures_and_undecodable_payloads_are_dead_at_once() {
        let marked = permanent(anyhow::anyhow!("no such event")).context("applying");
        let Outcome::Dead { reason } = Outcome::of_failure(&policy(), &marked, 1, 0, 0) else {
            panic!("permanent is permanent");
        };
        assert!(reason.contains("no such event"), "{reason}");
        let undecodable: anyhow::Error =
            EnvelopeError::WrongType { expected: "a.v1".into(), actual: "b.v1".into() }.into();
        assert!(is_permanent(&undecodable.context("decoding")));
        assert!(!is_permanent(&anyhow::anyhow!("timeout")));
    }
}
