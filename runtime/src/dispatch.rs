//! The outbox dispatcher: claims queued messages with a lease and hands each to its
//! channel, then records the result guarded by that lease.
//!
//! Channels here: a local file outbox for email, SMS and push (one `.eml` or `.json`
//! file per message, written to a temporary name and renamed, named by the message's
//! idempotency key so a re-dispatch after a crash finds the file and writes nothing
//! twice), and HTTP webhooks (a timeout, retries with exponential backoff, an
//! `X-Cairn-Signature` HMAC-SHA256 header and the idempotency key in a header, so the
//! receiver can drop a repeat). Configured real channels ([`crate::channels`]: SMTP,
//! SMS and push providers) replace the file outbox for their channel.
//!
//! Providers that cannot drop a repeat get at-most-once hand-overs: before a batch is
//! handed over, each message's `sending_at` is recorded; a message claimed again with
//! it still set was interrupted mid-hand-over (the daemon died before recording the
//! result) and is marked failed (`interrupted`) instead of being sent a second time.

pub use crate::channels::Delivery;
use crate::channels::email::{Sender, SmtpChannel};
use crate::channels::http::{PushChannel, SmsChannel};
use crate::channels::{PushConfig, SmsConfig, SmtpConfig};
use crate::model::Millis;
use crate::process::Core;
use crate::store::StoreError;
use crate::store::channels::{ErrorKind, Fate, Handover};
use crate::store::outbox::ClaimedMessage;
use hmac::{KeyInit, Mac};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How the dispatcher sends.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Where email, SMS and push messages are written.
    pub outbox_dir: PathBuf,
    /// The `From` of emails.
    pub email_from: String,
    pub email_reply_to: Option<String>,
    /// Email over SMTP; the file outbox when `None`.
    pub smtp: Option<SmtpConfig>,
    /// SMS through a provider; the file outbox when `None`.
    pub sms: Option<SmsConfig>,
    /// Push through a provider; the file outbox when `None`.
    pub push: Option<PushConfig>,
    /// The daemon's public URL, for unsubscribe links and providers' status callbacks.
    pub public_url: Option<String>,
    /// The key of signed links (one-click unsubscribe).
    pub link_secret: Option<Vec<u8>>,
    /// Key of webhook signatures.
    pub webhook_secret: String,
    pub webhook_timeout: Duration,
    /// Attempts before a message is given up (`failed`).
    pub max_attempts: i64,
    /// The first retry's delay; each next one doubles, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Messages claimed at once.
    pub batch: i64,
    /// How long a claim holds a message.
    pub lease: Duration,
    /// How often the outbox is polled without a nudge.
    pub poll: Duration,
}

impl DispatchConfig {
    pub fn new(outbox_dir: PathBuf, webhook_secret: String) -> DispatchConfig {
        DispatchConfig {
            outbox_dir,
            email_from: "Cairn <cairn@localhost>".into(),
            email_reply_to: None,
            smtp: None,
            sms: None,
            push: None,
            public_url: None,
            link_secret: None,
            webhook_secret,
            webhook_timeout: Duration::from_secs(10),
            max_attempts: 8,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3_600),
            batch: 64,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
        }
    }
}

pub struct Dispatcher {
    core: Arc<Core>,
    config: DispatchConfig,
    deliverer: Deliverer,
}

impl Dispatcher {
    /// Sets up the channels; fails with the reason when one is misconfigured.
    pub fn new(core: Arc<Core>, config: DispatchConfig) -> Result<Dispatcher, String> {
        let deliverer = Deliverer::new(&config)?;
        Ok(Dispatcher {
            core,
            config,
            deliverer,
        })
    }

    /// Dispatches until `stop` turns true, then finishes the messages it holds.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let sent = match self.dispatch_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatching failed; trying again shortly");
                    0
                }
            };
            if sent > 0 {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll) => {}
                () = self.core.outbox_changed.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Claims one batch and dispatches it; returns how many messages were handled.
    pub async fn dispatch_once(&self) -> Result<usize, StoreError> {
        let now = self.core.now();
        let lease_until = now + millis(self.config.lease);
        let owner = &self.core.worker_id;
        let claimed = self
            .core
            .store
            .claim_messages(owner, now, lease_until, self.config.batch)
            .await?;
        // Messages of a paused journey are skipped (reason `paused`).
        let claimed = crate::process::pause::hold_back_paused(&self.core, claimed).await;
        // Unsubscribes, bounces and complaints that came after the step queued a
        // message still hold it back (recorded as suppressed, never silently dropped).
        let claimed = crate::respect::hold_back_suppressed(&self.core, claimed).await;
        // Record the start of hand-overs to providers that cannot drop a repeat, and
        // never send again what an interrupted attempt may have sent.
        let guarded: Vec<&ClaimedMessage> = claimed
            .iter()
            .filter(|m| !self.deliverer.resend_safe(&m.channel))
            .collect();
        let handovers = self.core.store.begin_handover(&guarded, owner, now).await?;
        let mut skipped = std::collections::BTreeSet::new();
        for (message, handover) in guarded.iter().zip(handovers) {
            match handover {
                Handover::Start => {}
                Handover::LostLease => {
                    skipped.insert(message.id);
                }
                Handover::Interrupted(at) => {
                    skipped.insert(message.id);
                    let when = jiff::Timestamp::from_millisecond(at)
                        .map(|t| t.to_string())
                        .unwrap_or_else(|_| at.to_string());
                    let reason = format!(
                        "the daemon stopped while handing this message to the {} provider \
                         (at {when}); it may have been sent, so it is not sent again",
                        message.channel
                    );
                    self.record(message, Delivery::Failed(ErrorKind::Interrupted, reason))
                        .await;
                }
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for message in claimed.iter().filter(|m| !skipped.contains(&m.id)).cloned() {
            let deliver = self.deliverer.clone();
            tasks.spawn(async move {
                let result = deliver.deliver(&message).await;
                (message, result)
            });
        }
        let handled = claimed.len();
        while let Some(done) = tasks.join_next().await {
            let Ok((message, result)) = done else {
                continue;
            };
            self.record(&message, result).await;
        }
        Ok(handled)
    }

    async fn record(&self, message: &ClaimedMessage, result: Delivery) {
        let store = &self.core.store;
        let owner = &self.core.worker_id;
        let now = self.core.now();
        let (outcome, fate) = match result {
            Delivery::Sent(provider_ref) => ("sent", Fate::Sent { provider_ref }),
            Delivery::Retry(e) if message.attempts < self.config.max_attempts => {
                let delay = backoff(
                    message.attempts,
                    self.config.first_backoff,
                    self.config.max_backoff,
                );
                tracing::info!(key = %message.idempotency_key(), error = %e, "delivery failed; will retry");
                (
                    "retry",
                    Fate::Failed {
                        kind: ErrorKind::Temporary,
                        reason: e,
                        retry_at: Some(now + millis(delay)),
                    },
                )
            }
            Delivery::Retry(e) => {
                tracing::warn!(key = %message.idempotency_key(), error = %e, "delivery failed for good");
                (
                    "failed",
                    Fate::Failed {
                        kind: ErrorKind::Temporary,
                        reason: format!("gave up after {} attempts: {e}", message.attempts),
                        retry_at: None,
                    },
                )
            }
            Delivery::Failed(kind, e) => {
                tracing::warn!(key = %message.idempotency_key(), error = %e, "delivery failed for good");
                (
                    "failed",
                    Fate::Failed {
                        kind,
                        reason: e,
                        retry_at: None,
                    },
                )
            }
        };
        let written = store.record_fate(message, owner, now, &fate).await;
        self.core.metrics.record_send(&message.channel, outcome);
        if let Err(e) = written {
            tracing::warn!(key = %message.idempotency_key(), error = %e, "could not record a delivery");
        }
    }
}

/// Sends one message; cloned into each delivery task.
#[derive(Clone)]
struct Deliverer {
    config: DispatchConfig,
    http: reqwest::Client,
    smtp: Option<SmtpChannel>,
    sms: Option<SmsChannel>,
    push: Option<PushChannel>,
}

impl Deliverer {
    fn new(config: &DispatchConfig) -> Result<Deliverer, String> {
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .connect_timeout(config.webhook_timeout)
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let public_url = config.public_url.as_deref();
        let smtp = match &config.smtp {
            Some(smtp) => {
                let sender = Sender::parse(&config.email_from, config.email_reply_to.as_deref())?;
                let unsubscribe = public_url
                    .zip(config.link_secret.clone())
                    .map(|(url, key)| (url.to_string(), key));
                Some(SmtpChannel::new(smtp, sender, unsubscribe)?)
            }
            None => None,
        };
        let sms = config
            .sms
            .clone()
            .map(|c| SmsChannel::new(c, public_url))
            .transpose()?;
        let push = config
            .push
            .clone()
            .map(|c| PushChannel::new(c, public_url))
            .transpose()?;
        Ok(Deliverer {
            config: config.clone(),
            http,
            smtp,
            sms,
            push,
        })
    }

    /// Whether sending `channel`'s message twice is harmless: the file outbox finds
    /// the file it wrote, a webhook receiver drops a repeated idempotency key.
    fn resend_safe(&self, channel: &str) -> bool {
        match channel {
            "email" => self.smtp.is_none(),
            "sms" => self.sms.is_none(),
            "push" => self.push.is_none(),
            _ => true,
        }
    }

    async fn deliver(&self, message: &ClaimedMessage) -> Delivery {
        match message.channel.as_str() {
            "email" if self.smtp.is_some() => match &self.smtp {
                Some(smtp) => smtp.deliver(message).await,
                None => Delivery::Retry("no SMTP server".into()),
            },
            "sms" if self.sms.is_some() => match &self.sms {
                Some(sms) => sms.deliver(message).await,
                None => Delivery::Retry("no SMS provider".into()),
            },
            "push" if self.push.is_some() => match &self.push {
                Some(push) => push.deliver(message).await,
                None => Delivery::Retry("no push provider".into()),
            },
            "email" => self.write_file(
                message,
                "email",
                "eml",
                email(message, &self.config.email_from),
            ),
            "sms" | "push" => {
                let body = json!({
                    "idempotency_key": message.idempotency_key(),
                    "channel": message.channel,
                    "to": message.address,
                    "template": message.template,
                    "contact_id": message.contact_id,
                    "run_id": message.run_id,
                    "step": message.step,
                    "message": message.payload,
                });
                let text = serde_json::to_string_pretty(&body).unwrap_or_default() + "\n";
                self.write_file(message, &message.channel, "json", text)
            }
            "webhook" => self.post(message).await,
            other => Delivery::Failed(
                ErrorKind::Config,
                format!("no channel `{other}` in this daemon"),
            ),
        }
    }

    /// Writes the message under its idempotency key, atomically. A file already there
    /// is this message, written by an attempt whose result was not recorded.
    fn write_file(
        &self,
        message: &ClaimedMessage,
        folder: &str,
        ext: &str,
        text: String,
    ) -> Delivery {
        let dir = self.config.outbox_dir.join(folder);
        let name = format!("{}.{ext}", file_name(&message.idempotency_key()));
        match write_atomically(&dir, &name, text.as_bytes()) {
            Ok(()) => Delivery::sent(),
            Err(e) => Delivery::Retry(format!("cannot write `{}`: {e}", dir.join(&name).display())),
        }
    }

    async fn post(&self, message: &ClaimedMessage) -> Delivery {
        let body = serde_json::to_vec(&message.payload).unwrap_or_default();
        let timestamp = jiff::Timestamp::now().as_second();
        let signature = sign(&self.config.webhook_secret, timestamp, &body);
        let response = self
            .http
            .post(&message.address)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Cairn-Timestamp", timestamp.to_string())
            .header("X-Cairn-Signature", signature)
            .header("Idempotency-Key", message.idempotency_key())
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => Delivery::sent(),
            Ok(r)
                if r.status().as_u16() == 408
                    || r.status().as_u16() == 429
                    || r.status().is_server_error() =>
            {
                Delivery::Retry(format!("the webhook answered {}", r.status()))
            }
            Ok(r) => Delivery::Failed(
                ErrorKind::Rejected,
                format!("the webhook answered {}", r.status()),
            ),
            Err(e) if e.is_timeout() => {
                Delivery::Retry("the webhook did not answer in time".into())
            }
            Err(e) => Delivery::Retry(format!("the webhook could not be reached: {e}")),
        }
    }
}

/// Sends test messages (`cairn preview --send-to`) through the channels the outbox
/// uses, outside the outbox: nothing is queued, retried or counted.
#[derive(Clone)]
pub struct TestSender(Deliverer);

impl TestSender {
    /// Sets up the channels as [`Dispatcher::new`] does.
    pub fn new(config: &DispatchConfig) -> Result<TestSender, String> {
        Deliverer::new(config).map(TestSender)
    }

    /// One attempt at `message`.
    pub async fn send(&self, message: &ClaimedMessage) -> Delivery {
        self.0.deliver(message).await
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `"{timestamp}.{body}"`: a receiver recomputes it
/// with the shared secret and checks the timestamp is recent.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable_hmac());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[expect(
    clippy::panic,
    reason = "HMAC takes keys of any length, so this cannot happen"
)]
fn unreachable_hmac() -> hmac::Hmac<sha2::Sha256> {
    panic!("HMAC-SHA256 accepts every key length")
}

/// The delay before attempt `attempts + 1`: `first * 2^(attempts - 1)`, capped.
pub fn backoff(attempts: i64, first: Duration, max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    first.saturating_mul(2u32.saturating_pow(exponent)).min(max)
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A file name for an idempotency key: `/` and anything unusual become `_`.
fn file_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '@' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `name` in `dir` whole or not at all: a temporary file, flushed, then renamed.
/// An existing file is left as it is.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let target = dir.join(name);
    if target.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &target)
}

/// An RFC 5322 message of a rendered email: `subject`, and `html` and/or `text`.
fn email(message: &ClaimedMessage, from: &str) -> String {
    let part = |name: &str| message.payload.get(name).and_then(Json::as_str);
    let subject = part("subject").unwrap_or_default();
    let key = message.idempotency_key();
    let boundary = format!("cairn-{}", file_name(&key));
    let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S +0000");
    let mut out = String::new();
    out.push_str(&format!("From: {from}\r\n"));
    out.push_str(&format!("To: {}\r\n", message.address));
    out.push_str(&format!("Subject: {}\r\n", header_text(subject)));
    out.push_str(&format!("Date: {date}\r\n"));
    out.push_str(&format!("Message-ID: <{}@cairn>\r\n", file_name(&key)));
    out.push_str(&format!("X-Cairn-Idempotency-Key: {key}\r\n"));
    for (name, value) in extra_headers(message) {
        out.push_str(&format!("{name}: {}\r\n", header_text(value)));
    }
    if let Some(url) = part("unsubscribe_url") {
        // RFC 8058 one-click unsubscribe.
        out.push_str(&format!("List-Unsubscribe: <{url}>\r\n"));
        out.push_str("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    }
    out.push_str("MIME-Version: 1.0\r\n");
    match (part("text"), part("html")) {
        (Some(text), Some(html)) => {
            out.push_str(&format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
            ));
            out.push_str(&format!(
                "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
            ));
            out.push_str(&format!(
                "--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n"
            ));
            out.push_str(&format!("--{boundary}--\r\n"));
        }
        (None, Some(html)) => {
            out.push_str(
                "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            );
            out.push_str(html);
            out.push_str("\r\n");
        }
        (text, None) => {
            out.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            out.push_str(text.unwrap_or_default());
            out.push_str("\r\n");
        }
    }
    out
}

/// Headers a message asks for besides the usual ones (a test send's `X-Cairn-Test`):
/// its payload's `headers` object, names of letters, digits and `-` only.
pub(crate) fn extra_headers(message: &ClaimedMessage) -> Vec<(&str, &str)> {
    let Some(Json::Object(headers)) = message.payload.get("headers") else {
        return Vec::new();
    };
    headers
        .iter()
        .filter(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?)))
        .collect()
}

/// A header value: one line, non-ASCII as an RFC 2047 encoded word.
fn header_text(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if line.is_ascii() {
        line
    } else {
        use base64::Engine as _;
        format!(
            "=?utf-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(line.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel: &str) -> ClaimedMessage {
        ClaimedMessage {
            id: 1,
            run_id: "cart/ana/1".into(),
            step: "remind".into(),
            visit: 1,
            contact_id: "ana".into(),
            channel: channel.into(),
            template: Some("cart_reminder".into()),
            address: "ana@example.com".into(),
            payload: json!({"subject": "Tu as oublié ton panier", "html": "<p>Hi</p>", "text": "Hi"}),
            attempts: 1,
            created_at: 0,
            marketing: true,
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let first = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, first, max), Duration::from_secs(1));
        assert_eq!(backoff(2, first, max), Duration::from_secs(2));
        assert_eq!(backoff(4, first, max), Duration::from_secs(8));
        assert_eq!(backoff(40, first, max), max);
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Computed independently, with Python's `hmac` module.
        let signature = sign("secret", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(
            signature,
            "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        assert_eq!(signature, sign("secret", 1_700_000_000, b"{\"a\":1}"));
        assert_ne!(signature, sign("other", 1_700_000_000, b"{\"a\":1}"));
        assert_ne!(signature, sign("secret", 1_700_000_001, b"{\"a\":1}"));
    }

    #[tokio::test]
    async fn the_file_outbox_writes_each_message_once() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let deliverer = Deliverer::new(&DispatchConfig::new(dir.path().to_path_buf(), "s".into()))
            .expect("a deliverer");
        assert_eq!(deliverer.deliver(&message("email")).await, Delivery::sent());
        let file = dir.path().join("email/cart_ana_1_remind_1.eml");
        let text = std::fs::read_to_string(&file).expect("the .eml file");
        assert!(text.contains("To: ana@example.com\r\n"), "{text}");
        assert!(
            text.contains("Subject: =?utf-8?B?"),
            "non-ASCII subjects are encoded"
        );
        assert!(text.contains("multipart/alternative"));
        // A second dispatch of the same key (after a crash) leaves the file alone.
        std::fs::write(&file, "first").expect("mark the file");
        assert_eq!(deliverer.deliver(&message("email")).await, Delivery::sent());
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "first");
        assert_eq!(deliverer.deliver(&message("sms")).await, Delivery::sent());
        let sms =
            std::fs::read_to_string(dir.path().join("sms/cart_ana_1_remind_1.json")).expect("sms");
        let sms: Json = serde_json::from_str(&sms).expect("JSON");
        assert_eq!(sms["to"], json!("ana@example.com"));
        assert!(matches!(
            deliverer.deliver(&message("fax")).await,
            Delivery::Failed(..)
        ));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("email"))
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[tokio::test]
    async fn webhooks_are_signed_retried_on_5xx_and_failed_on_4xx() {
        use axum::http::{HeaderMap, StatusCode};
        use std::sync::Mutex;
        type Requests = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;
        let seen: Requests = Arc::default();
        let answers = Arc::new(Mutex::new(vec![
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::OK,
            StatusCode::NOT_FOUND,
        ]));
        let app = {
            let seen = seen.clone();
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                    let seen = seen.clone();
                    let answers = answers.clone();
                    async move {
                        if let Ok(mut seen) = seen.lock() {
                            seen.push((headers, body.to_vec()));
                        }
                        answers
                            .lock()
                            .map(|mut a| a.remove(0))
                            .unwrap_or(StatusCode::OK)
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().expect("a temporary directory");
        let deliverer = Deliverer::new(&DispatchConfig::new(
            dir.path().to_path_buf(),
            "s3cret".into(),
        ))
        .expect("a deliverer");
        let mut hook = message("webhook");
        hook.address = url;
        hook.payload = json!({"contact": "ana", "spend": "500 EUR"});
        assert!(matches!(deliverer.deliver(&hook).await, Delivery::Retry(_)));
        assert_eq!(deliverer.deliver(&hook).await, Delivery::sent());
        assert!(matches!(
            deliverer.deliver(&hook).await,
            Delivery::Failed(..)
        ));

        let seen = seen.lock().expect("the requests");
        let (headers, body) = &seen[1];
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        assert_eq!(header("idempotency-key"), "cart/ana/1/remind/1");
        let timestamp: i64 = header("x-cairn-timestamp").parse().expect("a timestamp");
        assert_eq!(header("x-cairn-signature"), sign("s3cret", timestamp, body));
        assert_eq!(
            serde_json::from_slice::<Json>(body).expect("JSON"),
            json!({"contact": "ana", "spend": "500 EUR"})
        );
    }
}
