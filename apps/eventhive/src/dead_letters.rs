//! `eventhive dead-letters list|replay`: the bus messages parked in a queue's dead letters, for
//! every queue of every service, on RabbitMQ (`EVENTHIVE_AMQP_URL`) or on the in-process bus
//! of `eventhive dev` (its database under `EVENTHIVE_DATA_DIR`; a running `eventhive dev` picks
//! replayed messages up within a moment).

use clap::Subcommand;
use eventhive_platform::{
    Settings,
    bus::{self, Replay},
    storage::ms_to_rfc3339,
};

#[derive(Subcommand)]
pub enum Command {
    /// Lists dead letters with their reason, every queue's or one's.
    List {
        /// Only this queue (e.g. notifications.email).
        #[arg(long)]
        queue: Option<String>,
    },
    /// Puts dead letters back onto their queue with a fresh set of retries.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["id", "all"]))]
    Replay {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// The message ids to replay (as `list` shows them); repeat for several.
        #[arg(long)]
        id: Vec<String>,
        /// Every dead letter (of the queue, or of every queue).
        #[arg(long)]
        all: bool,
    },
}

/// The queues the command works on: the one named, which must be a queue of some service, or
/// all of them.
fn queues(queue: Option<String>) -> anyhow::Result<Vec<String>> {
    let known: Vec<String> = eventhive_system::subscriptions().into_iter().map(|s| s.queue).collect();
    match queue {
        None => Ok(known),
        Some(queue) if known.contains(&queue) => Ok(vec![queue]),
        Some(queue) => anyhow::bail!("no service consumes a queue {queue:?}; the queues are {}", known.join(", ")),
    }
}

pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    let bus = bus::connect(settings).await?;
    match command {
        Command::List { queue } => {
            let mut found = 0;
            for queue in queues(queue)? {
                for letter in bus.dead_letters(&queue).await? {
                    found += 1;
                    let at = letter.dead_at.map_or_else(|| "-".to_owned(), ms_to_rfc3339);
                    println!(
                        "{}  {}  {}  dead at {at} after {} attempts: {}",
                        letter.queue, letter.id, letter.routing_key, letter.attempts, letter.reason
                    );
                }
            }
            if found == 0 {
                println!("no dead letters");
            }
        }
        Command::Replay { queue, id, all } => {
            let which = if all { Replay::All } else { Replay::Ids(id) };
            let mut replayed = 0;
            for queue in queues(queue)? {
                replayed += bus.replay_dead_letters(&queue, &which).await?;
            }
            println!("{replayed} dead letters replayed");
        }
    }
    Ok(())
}
