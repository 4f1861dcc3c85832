//! A small, real SMTP server for tests: it listens on 127.0.0.1 (port 0), speaks enough SMTP
//! for a real client (lettre) to deliver to it, and keeps what it receives in memory so a test
//! can parse the raw messages. [`SmtpServer::failing_first`] answers the first transactions with
//! a transient error, to test that senders retry.
//!
//! It never advertises STARTTLS, so an opportunistic-TLS client stays on plain text.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::{JoinHandle, JoinSet},
};

/// Bytes of one message the server takes before it gives up on the client; tests send little.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (MAIL FROM), without the angle brackets.
    pub from: String,
    /// The envelope recipients (RCPT TO), without the angle brackets.
    pub to: Vec<String>,
    /// The raw RFC 5322 message, dot-stuffing undone, lines ending in CRLF.
    pub data: String,
}

#[derive(Default)]
struct State {
    messages: Mutex<Vec<ReceivedMail>>,
    /// MAIL FROM commands seen, failed ones included: a sender's attempts.
    attempts: AtomicUsize,
    /// Transactions still to be refused with a 451.
    failures_left: AtomicUsize,
}

/// The running server; it stops when dropped.
pub struct SmtpServer {
    address: SocketAddr,
    state: Arc<State>,
    accepting: JoinHandle<()>,
}

impl SmtpServer {
    /// A server that accepts every message.
    pub async fn start() -> Self {
        Self::failing_first(0).await
    }

    /// A server that answers the first `failures` transactions with `451` (a transient error)
    /// at MAIL FROM, then accepts.
    pub async fn failing_first(failures: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("test SMTP server cannot listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("test SMTP server address: {error}"));
        let state = Arc::new(State { failures_left: AtomicUsize::new(failures), ..State::default() });
        let accepting = tokio::spawn(accept(listener, state.clone()));
        Self { address, state, accepting }
    }

    /// `smtp://127.0.0.1:<port>`, for `EVENTHIVE_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// The messages received so far, oldest first.
    pub async fn messages(&self) -> Vec<ReceivedMail> {
        self.state.messages.lock().await.clone()
    }

    /// The server goes down: it stops listening and drops every open session, as a crashed
    /// mail server would; what it received is kept.
    pub fn stop(&mut self) {
        self.accepting.abort();
    }

    /// Listens again on the same address, after [`Self::stop`].
    pub async fn start_again(&mut self) -> std::io::Result<()> {
        self.accepting.abort();
        let listener = TcpListener::bind(self.address).await?;
        self.accepting = tokio::spawn(accept(listener, self.state.clone()));
        Ok(())
    }

    /// Transactions attempted so far (MAIL FROM commands), refused ones included.
    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which ends every open session too.
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    sessions.spawn(session(stream, state.clone()));
                }
                Err(error) => tracing::warn!(%error, "test SMTP server: accept failed"),
            },
            // Reap finished sessions so the set does not grow over a long test.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// The transaction being built: MAIL FROM, then RCPT TO, then DATA.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

async fn session(stream: TcpStream, state: Arc<State>) {
    if let Err(error) = converse(stream, &state).await {
        tracing::debug!(%error, "test SMTP session ended");
    }
}

async fn converse(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 localhost ESMTP eventhive-test\r\n").await?;
    let mut transaction = Transaction::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => {
                transaction = Transaction::default();
                b"250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 33554432\r\n"
            }
            "HELO" => {
                transaction = Transaction::default();
                b"250 localhost\r\n"
            }
            "MAIL" => {
                state.attempts.fetch_add(1, Ordering::SeqCst);
                let refuse = state
                    .failures_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                    .is_ok();
                if refuse {
                    transaction = Transaction::default();
                    b"451 4.3.0 Temporary failure, try again later\r\n"
                } else {
                    transaction = Transaction { from: Some(address_of(&command)), to: Vec::new() };
                    b"250 2.1.0 OK\r\n"
                }
            }
            "RCPT" if transaction.from.is_some() => {
                transaction.to.push(address_of(&command));
                b"250 2.1.5 OK\r\n"
            }
            "RCPT" => b"503 5.5.1 MAIL first\r\n",
            "DATA" if transaction.to.is_empty() => b"503 5.5.1 RCPT first\r\n",
            "DATA" => {
                writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let Some(data) = read_data(&mut reader).await? else {
                    return Ok(());
                };
                let done = std::mem::take(&mut transaction);
                state.messages.lock().await.push(ReceivedMail {
                    from: done.from.unwrap_or_default(),
                    to: done.to,
                    data,
                });
                b"250 2.0.0 OK: queued\r\n"
            }
            "RSET" => {
                transaction = Transaction::default();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not implemented\r\n",
        };
        writer.write_all(reply).await?;
    }
}

/// The message after DATA, up to the line with a single dot, dot-stuffing undone. `None` if
/// the client went away (or sent far too much) before finishing it.
async fn read_data<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
        }
        // RFC 5321 4.5.2: a line the client started with a dot got a second one.
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(unstuffed);
        if data.len() > MAX_MESSAGE_BYTES {
            return Ok(None);
        }
    }
}

/// `foo@example.com` from `MAIL FROM:<foo@example.com> BODY=8BITMIME` or `RCPT TO:<...>`.
fn address_of(command: &str) -> String {
    let after_colon = command.split_once(':').map(|(_, rest)| rest).unwrap_or_default().trim_start();
    match after_colon.strip_prefix('<').and_then(|rest| rest.split_once('>')) {
        Some((address, _)) => address.to_owned(),
        None => after_colon.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_lose_their_brackets_and_parameters() {
        assert_eq!(address_of("MAIL FROM:<a@b.c> BODY=8BITMIME"), "a@b.c");
        assert_eq!(address_of("RCPT TO: <x@y.z>"), "x@y.z");
        assert_eq!(address_of("MAIL FROM:<>"), "");
    }
}
