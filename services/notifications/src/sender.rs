//! The sender: it moves queued deliveries out. With an SMTP server (`EVENTHIVE_SMTP_URL`) it
//! sends them with lettre, retrying a failure after `smtp_retry_base_ms`, doubling each time
//! (at most 5 minutes), until `smtp_max_attempts` failures make the delivery dead, kept for an
//! operator to replay. Without one, sending means keeping the email in the dev inbox; mail is
//! never dropped.
//!
//! [`Sender::step`] does one pass at a given time, so tests drive the sender deterministically;
//! [`Sender::run`] calls it every 250 ms and whenever the consumer queued something.
//!
//! A delivery being sent is leased (its `next_attempt_at` pushed past the send), so several
//! replicas never send one email at the same time; no transaction is held across SMTP.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use eventhive_platform::Database;

use crate::NotificationsSettings;
use futures::{StreamExt, stream};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{self, StoredAttachment};

/// How often the loop looks for due deliveries when nothing woke it.
pub const TICK: Duration = Duration::from_millis(250);
/// Deliveries claimed per pass.
const BATCH: i64 = 64;
/// SMTP sends at once; lettre's pool keeps that many connections open.
const CONCURRENCY: usize = 8;
/// How long recording a sent email is retried, as a share of the lease: well inside it, so
/// that no other pass sends it meanwhile.
const RECORD_SENT_SHARE_OF_LEASE: f64 = 0.5;
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// Bound on each SMTP command, so a stuck server cannot hold a send for ever.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Delivered (to the SMTP server, or into the dev inbox).
    pub sent: u64,
    /// Failed, to be tried again later.
    pub retried: u64,
    /// Failed for the last time (or for good), now dead letters.
    pub dead: u64,
}

impl SendReport {
    fn total(&self) -> u64 {
        self.sent + self.retried + self.dead
    }
}

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Nowhere: it stays in the database, listed by `ListDevMail`.
    DevInbox,
}

impl Mailer {
    /// The SMTP transport for `smtp://host:port` (plain; `?tls=required` or `?tls=opportunistic`
    /// for STARTTLS) or `smtps://host:port` (TLS), with `user:password@` if the server wants it.
    pub fn from_settings(settings: &NotificationsSettings) -> anyhow::Result<Self> {
        match &settings.smtp_url {
            None => Ok(Self::DevInbox),
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("EVENTHIVE_SMTP_URL is not a usable SMTP URL")?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                Ok(Self::Smtp(transport))
            }
        }
    }
}

/// Sends due deliveries; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    mailer: Mailer,
    from: Mailbox,
    /// The domain of `Message-ID`s, from the sender address.
    domain: String,
    max_attempts: i64,
    retry_base_ms: i64,
    /// How long a claimed delivery is left alone by other passes (`smtp_lease_ms`).
    lease_ms: i64,
    wake: Notify,
}

/// The outcome of one delivery.
enum Outcome {
    Sent,
    Retried,
    Dead,
}

impl Sender {
    pub fn new(db: Database, settings: &NotificationsSettings) -> anyhow::Result<Self> {
        Self::with_mailer(db, Mailer::from_settings(settings)?, settings)
    }

    pub fn with_mailer(db: Database, mailer: Mailer, settings: &NotificationsSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings.smtp_from.parse().context("EVENTHIVE_SMTP_FROM is not an email address")?;
        let domain = from.email.domain().to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                mailer,
                from,
                domain,
                max_attempts: i64::from(settings.smtp_max_attempts.max(1)),
                retry_base_ms: i64::try_from(settings.smtp_retry_base_ms).unwrap_or(MAX_BACKOFF_MS).max(1),
                lease_ms: i64::try_from(settings.smtp_lease_ms).unwrap_or(i64::MAX / 2),
                wake: Notify::new(),
            }),
        })
    }

    /// Whether mail goes to an SMTP server (else to the dev inbox).
    pub fn uses_smtp(&self) -> bool {
        matches!(self.inner.mailer, Mailer::Smtp(_))
    }

    /// Makes the loop look for due deliveries now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Sends what is due at `now_ms` (Unix ms), once.
    #[tracing::instrument(name = "sender.step", skip(self), level = "debug")]
    pub async fn step(&self, now_ms: i64) -> anyhow::Result<SendReport> {
        let report = match &self.inner.mailer {
            Mailer::DevInbox => self.keep_in_dev_inbox(now_ms).await,
            Mailer::Smtp(transport) => self.send_by_smtp(transport, now_ms).await,
        }?;
        for (outcome, count) in [("sent", report.sent), ("retried", report.retried), ("dead", report.dead)] {
            if count > 0 {
                metrics::counter!("eventhive_emails_total", "outcome" => outcome).increment(count);
            }
        }
        Ok(report)
    }

    /// Sends due deliveries until `shutdown`: every [`TICK`], at once when woken, and again
    /// straight away while passes find full batches.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pass = tokio::select! {
                _ = shutdown.cancelled() => return,
                pass = self.step(eventhive_platform::storage::now_ms()) => pass,
            };
            let busy = match pass {
                Ok(report) => {
                    if report.total() > 0 {
                        tracing::debug!(?report, "sender pass");
                    }
                    report.total() >= u64::try_from(BATCH).unwrap_or(u64::MAX)
                }
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "sender pass failed");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Without SMTP, every due delivery is "sent" into the dev inbox in one statement.
    async fn keep_in_dev_inbox(&self, now_ms: i64) -> anyhow::Result<SendReport> {
        let kept = store::keep_due_in_dev_inbox(&self.inner.db, now_ms).await?;
        Ok(SendReport { sent: kept, ..SendReport::default() })
    }

    async fn send_by_smtp(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        now_ms: i64,
    ) -> anyhow::Result<SendReport> {
        let claimed = self.claim(now_ms).await?;
        let outcomes: Vec<anyhow::Result<Outcome>> = stream::iter(claimed)
            .map(|id| async move { self.deliver(transport, &id, now_ms).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut report = SendReport::default();
        for outcome in outcomes {
            match outcome? {
                Outcome::Sent => report.sent += 1,
                Outcome::Retried => report.retried += 1,
                Outcome::Dead => report.dead += 1,
            }
        }
        Ok(report)
    }

    /// Leases up to [`BATCH`] due deliveries to this pass.
    async fn claim(&self, now_ms: i64) -> anyhow::Result<Vec<String>> {
        store::lease_due(&self.inner.db, now_ms, now_ms + self.inner.lease_ms, BATCH).await
    }

    /// Sends one claimed delivery and records how it went.
    #[tracing::instrument(skip(self, transport, now_ms), fields(delivery_id = id))]
    async fn deliver(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        id: &str,
        now_ms: i64,
    ) -> anyhow::Result<Outcome> {
        let db = &self.inner.db;
        let mut conn = db.pool().acquire().await?;
        let row = store::delivery(&mut conn, id).await?;
        let row = row.context("a claimed delivery vanished")?;
        let attachments = store::attachments(&mut conn, id).await?;
        // Never hold a connection across SMTP: SQLite has only one.
        drop(conn);
        let attempts = row.attempts + 1;
        let message = match self.message(&row, attachments) {
            Ok(message) => message,
            // A message that cannot be built (a malformed address) will not build next time.
            Err(error) => return self.failed(id, attempts, &format!("{error:#}"), true, now_ms).await,
        };
        match transport.send(message).await {
            Ok(_) => {
                self.record_sent(id, attempts, now_ms).await?;
                tracing::info!(recipient = row.recipient, kind = row.kind, "email sent");
                Ok(Outcome::Sent)
            }
            Err(error) => {
                // A permanent refusal (5xx: no such mailbox) will not change by retrying.
                let permanent = error.is_permanent();
                self.failed(id, attempts, &error.to_string(), permanent, now_ms).await
            }
        }
    }

    /// Records that the SMTP server took the email. The server has it: if the record failed
    /// (the database restarting), the lease would run out and the email go out a second time,
    /// so the record is tried again, with backoff, for most of the lease (found by `eventhive
    /// chaos`, database-restart: three confirmations sent twice).
    async fn record_sent(&self, id: &str, attempts: i64, now_ms: i64) -> anyhow::Result<()> {
        let lease = Duration::from_millis(u64::try_from(self.inner.lease_ms).unwrap_or_default());
        let give_up = tokio::time::Instant::now() + lease.mul_f64(RECORD_SENT_SHARE_OF_LEASE);
        let mut wait = Duration::from_millis(100);
        loop {
            match store::mark_sent(&self.inner.db, id, attempts, now_ms).await {
                Ok(()) => return Ok(()),
                Err(error) if tokio::time::Instant::now() + wait < give_up => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        delivery_id = id,
                        "recording a sent email; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Records a failed attempt: retried later with backoff, or dead after the last attempt.
    async fn failed(
        &self,
        id: &str,
        attempts: i64,
        error: &str,
        permanent: bool,
        now_ms: i64,
    ) -> anyhow::Result<Outcome> {
        let dead = permanent || attempts >= self.inner.max_attempts;
        let next_attempt_at = now_ms.saturating_add(self.backoff_ms(attempts));
        store::mark_failed(&self.inner.db, id, dead, attempts, error, next_attempt_at).await?;
        if dead {
            tracing::error!(delivery_id = id, attempts, error, "email is dead-lettered");
            Ok(Outcome::Dead)
        } else {
            tracing::warn!(delivery_id = id, attempts, error, "email failed; will retry");
            Ok(Outcome::Retried)
        }
    }

    /// The wait after `attempts` failures: the base, doubling, at most 5 minutes.
    pub fn backoff_ms(&self, attempts: i64) -> i64 {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.inner.retry_base_ms.saturating_mul(1_i64 << doublings).min(MAX_BACKOFF_MS)
    }

    /// The MIME message: text and HTML alternatives, the HTML with its inline images.
    fn message(&self, row: &store::DeliveryRow, attachments: Vec<StoredAttachment>) -> anyhow::Result<Message> {
        let to: Mailbox =
            row.recipient.parse().with_context(|| format!("bad recipient address {:?}", row.recipient))?;
        let html = if attachments.is_empty() {
            MultiPart::alternative_plain_html(row.body_text.clone(), row.body_html.clone())
        } else {
            let mut related = MultiPart::related().singlepart(SinglePart::html(row.body_html.clone()));
            for attachment in attachments {
                let content_type = ContentType::parse(&attachment.content_type)
                    .with_context(|| format!("bad content type {:?}", attachment.content_type))?;
                related = related.singlepart(
                    Attachment::new_inline_with_name(attachment.content_id, attachment.filename)
                        .body(attachment.data, content_type),
                );
            }
            MultiPart::alternative().singlepart(SinglePart::plain(row.body_text.clone())).multipart(related)
        };
        Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(row.subject.clone())
            // Stable per delivery: a resend after a crash is recognisable as the same email.
            .message_id(Some(format!("<{}@{}>", row.id, self.inner.domain)))
            .multipart(html)
            .context("building an email")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sender(base_ms: u64) -> (Sender, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let settings = eventhive_platform::Settings { data_dir: dir.path().to_owned(), ..Default::default() };
        let db = Database::connect(&settings, "notifications").await.unwrap();
        let section = NotificationsSettings { smtp_retry_base_ms: base_ms, ..Default::default() };
        (Sender::new(db, &section).unwrap(), dir)
    }

    #[tokio::test]
    async fn backoff_doubles_from_the_base_up_to_five_minutes() {
        let (sender, _dir) = sender(1000).await;
        assert_eq!(sender.backoff_ms(1), 1000);
        assert_eq!(sender.backoff_ms(2), 2000);
        assert_eq!(sender.backoff_ms(3), 4000);
        assert_eq!(sender.backoff_ms(9), 256_000);
        assert_eq!(sender.backoff_ms(10), MAX_BACKOFF_MS);
        assert_eq!(sender.backoff_ms(1000), MAX_BACKOFF_MS);
    }

    #[tokio::test]
    async fn without_an_smtp_url_mail_goes_to_the_dev_inbox() {
        let (sender, _dir) = sender(1000).await;
        assert!(!sender.uses_smtp());
    }
}
