//! The automatic rate's step, a closed loop on how the sale is coping: additive increase,
//! multiplicative decrease (as TCP paces a connection). Each tick the admission loop asks
//! ticketing for the event's counts; how long that answer takes is the signal here. It runs
//! on the purchase path's own service and database, so when purchases slow down, it does too.
//! Under the target the step grows by one buyer a second (up to the ceiling); over it, the
//! step halves (down to one). The other signal, the tickets left, caps the admissions
//! themselves (`AdmitLimit::outstanding_at_most`).

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
    target: Duration,
}

/// Where a room's step starts: small, so the first seconds of an on-sale probe the sale.
const FIRST_STEP: i64 = 1;

impl Pace {
    pub fn new(ceiling: i64, target: Duration) -> Self {
        Self { steps: Arc::default(), ceiling: ceiling.max(1), target }
    }

    /// The room's next step, given how long the sale took to answer this tick.
    pub fn next(&self, event: EventId, observed: Duration) -> i64 {
        let Ok(mut steps) = self.steps.lock() else { return FIRST_STEP };
        let step = steps.entry(event).or_insert(FIRST_STEP);
        *step = if observed > self.target { (*step / 2).max(1) } else { (*step + 1).min(self.ceiling) };
        *step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_grows_by_one_while_the_sale_copes_and_halves_when_it_slows() {
        let pace = Pace::new(5, Duration::from_millis(100));
        let (event, fast, slow) = (EventId::new(), Duration::from_millis(10), Duration::from_millis(300));
        let steps: Vec<i64> = [fast, fast, fast, fast, fast, slow, slow, fast].map(|l| pace.next(event, l)).into();
        assert_eq!(steps, [2, 3, 4, 5, 5, 2, 1, 2]);
        assert_eq!(pace.next(EventId::new(), slow), 1, "each room has its own step, never below one");
    }
}
