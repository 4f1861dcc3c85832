//! The automatic rate's step, a closed loop on how the sale is coping: additive increase,
//! multiplicative decrease (as TCP paces a connection). The signal is the sale's own: the p99
//! of placing and paying orders that ticketing measures ([`crate::signals`]), compared with
//! `EVENTHIVE_WAITING_ROOM_PURCHASE_P99_TARGET_MS`. Under the target, or with no purchase to
//! judge by yet, the step grows by one buyer a second (up to the ceiling); over it, the step
//! halves (down to one). The other signal, the tickets left, caps the admissions themselves
//! (`AdmitLimit::outstanding_at_most`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use eventhive_domain::EventId;

/// Each room's current step, in buyers a second. Per replica: each replica paces itself on
/// what it observes, and the rate's allowance they draw from is shared in the queue store.
#[derive(Clone)]
pub struct Pace {
    steps: Arc<Mutex<HashMap<EventId, i64>>>,
    ceiling: i64,
    /// The purchase p99 the sale should stay under.
    target: Duration,
}

/// Where a room's step starts: small, so the first seconds of an on-sale probe the sale.
const FIRST_STEP: i64 = 1;

impl Pace {
    pub fn new(ceiling: i64, target: Duration) -> Self {
        Self { steps: Arc::default(), ceiling: ceiling.max(1), target }
    }

    /// The room's next step, given the purchase p99 now (`None`: no purchase to judge by,
    /// which is when the step must probe).
    pub fn next(&self, event: EventId, purchase_p99: Option<Duration>) -> i64 {
        let Ok(mut steps) = self.steps.lock() else { return FIRST_STEP };
        let step = steps.entry(event).or_insert(FIRST_STEP);
        *step = if purchase_p99.is_some_and(|p99| p99 > self.target) {
            (*step / 2).max(1)
        } else {
            (*step + 1).min(self.ceiling)
        };
        *step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_grows_by_one_while_purchases_are_fast_and_halves_when_they_slow() {
        let pace = Pace::new(5, Duration::from_millis(100));
        let event = EventId::new();
        let (fast, slow) = (Some(Duration::from_millis(10)), Some(Duration::from_millis(300)));
        let steps: Vec<i64> = [fast, fast, fast, fast, fast, slow, slow, fast].map(|p| pace.next(event, p)).into();
        assert_eq!(steps, [2, 3, 4, 5, 5, 2, 1, 2]);
        assert_eq!(pace.next(EventId::new(), slow), 1, "each room has its own step, never below one");
    }

    #[test]
    fn without_purchases_the_step_probes_and_the_target_itself_is_within_it() {
        let pace = Pace::new(10, Duration::from_millis(100));
        let event = EventId::new();
        assert_eq!(pace.next(event, None), 2);
        assert_eq!(pace.next(event, None), 3);
        assert_eq!(pace.next(event, Some(Duration::from_millis(100))), 4, "at the target is within it");
        assert_eq!(pace.next(event, Some(Duration::from_millis(101))), 2);
    }
}
