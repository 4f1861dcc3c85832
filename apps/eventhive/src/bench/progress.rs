//! A progress line on stderr while the timed part runs, rewritten about once a second: the
//! time so far, what completed and the rate over the last second. Only on a terminal: in a log
//! or a CI job, carriage returns would be noise.

use std::{io::IsTerminal, io::Write, sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use super::timeline::Timeline;

pub struct Progress(Option<JoinHandle<()>>);

impl Progress {
    /// Starts the line counting `what` ("purchases", "requests") from `timeline`.
    pub fn start(what: &'static str, timeline: Arc<Timeline>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        Self(Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut before = 0;
            loop {
                tick.tick().await;
                let now = timeline.completed();
                eprint!(
                    "\r  {:>5.0} s  {now:>9} {what}  {:>7} /s   ",
                    timeline.elapsed().as_secs_f64(),
                    now.saturating_sub(before)
                );
                let _ = std::io::stderr().flush();
                before = now;
            }
        })))
    }

    /// Ends the line, so what follows starts on a line of its own.
    pub fn stop(self) {
        if let Some(task) = self.0 {
            task.abort();
            eprintln!();
        }
    }
}
