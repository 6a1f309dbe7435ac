//! Email over SMTP with lettre: a pool of connections with `TCP_NODELAY` (STARTTLS,
//! implicit TLS or plain for a local relay, with optional authentication), and each
//! rendered message built
//! as `multipart/alternative` (plain text and HTML) with `Message-ID`, `Date`, `From`,
//! `Reply-To` and, on marketing messages, the RFC 8058 one-click `List-Unsubscribe`
//! headers.
//!
//! The `Message-ID` is derived from the message's idempotency key, so every attempt at
//! one message carries the same id.

use super::{Delivery, SmtpConfig, TlsMode, html_to_text};
use crate::store::channels::ErrorKind;
use crate::store::outbox::ClaimedMessage;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)] // `AsyncNetworkStream`: see `Pool::connect`
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use serde_json::Value as Json;
use sha2::Digest;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

/// Who emails are from, as configured.
#[derive(Debug, Clone)]
pub struct Sender {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
}

impl Sender {
    /// Parses `From` and `Reply-To` (`Name <address>` or a bare address).
    pub fn parse(from: &str, reply_to: Option<&str>) -> Result<Sender, String> {
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| format!("the From address `{from}` is not valid: {e}"))?;
        let reply_to = reply_to
            .map(|r| {
                r.parse::<Mailbox>()
                    .map_err(|e| format!("the Reply-To address `{r}` is not valid: {e}"))
            })
            .transpose()?;
        Ok(Sender { from, reply_to })
    }

    /// The domain of `Message-ID`s: the `From` address's.
    fn domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// A pool of SMTP connections to one server.
#[derive(Clone)]
pub struct SmtpChannel {
    pool: Arc<Pool>,
    sender: Sender,
    /// `(public base URL, key)` of the signed one-click unsubscribe links.
    unsubscribe: Option<(String, Vec<u8>)>,
    /// How long connecting may take, and how long one message's whole exchange may.
    timeout: Duration,
}

/// Our own pool rather than lettre's: its connections come from lettre's connect, which
/// leaves Nagle's algorithm on, and lettre writes a message's body and its closing `.`
/// separately, so each message waited for the server's delayed ACK (about 40 ms, a
/// ceiling of ~25 messages/s per connection). Here every socket has `TCP_NODELAY`.
struct Pool {
    host: String,
    port: u16,
    tls: Option<(TlsMode, TlsParameters)>,
    hello: ClientId,
    /// The user (for messages) and the credentials to log in with.
    credentials: Option<(String, Credentials)>,
    /// At most `size` exchanges (so connections) at once.
    permits: Semaphore,
    size: usize,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// Idle connections older than this are closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections older than this are checked with `NOOP` before they are reused.
const CHECK_AFTER: Duration = Duration::from_secs(2);

impl SmtpChannel {
    /// Sets up the pool; no connection is opened before the first message.
    pub fn new(
        config: &SmtpConfig,
        sender: Sender,
        unsubscribe: Option<(String, Vec<u8>)>,
    ) -> Result<SmtpChannel, String> {
        let tls_parameters = || -> Result<TlsParameters, String> {
            let mut builder = TlsParameters::builder(config.host.clone());
            if let Some(file) = &config.ca_file {
                let pem = std::fs::read(file)
                    .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| format!("`{}` is not a PEM certificate: {e}", file.display()))?;
                builder = builder.add_root_certificate(certificate);
            }
            builder
                .build_rustls()
                .map_err(|e| format!("cannot set up TLS for `{}`: {e}", config.host))
        };
        let tls = match config.tls {
            TlsMode::None => None,
            mode => Some((mode, tls_parameters()?)),
        };
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some((
                user.clone(),
                Credentials::new(user.clone(), password.clone()),
            )),
            (Some(user), None) => {
                return Err(format!(
                    "the SMTP user `{user}` has no password: set CAIRN_SMTP_PASSWORD or \
                     CAIRN_SMTP_PASSWORD_FILE"
                ));
            }
            _ => None,
        };
        let hello = match &config.hello_name {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        let size = config.pool_size.max(1) as usize;
        Ok(SmtpChannel {
            pool: Arc::new(Pool {
                host: config.host.clone(),
                port: config.port(),
                tls,
                hello,
                credentials,
                permits: Semaphore::new(size),
                size,
                idle: Mutex::new(Vec::with_capacity(size)),
            }),
            sender,
            unsubscribe,
            timeout: config.timeout,
        })
    }

    /// Builds and sends one message.
    pub async fn deliver(&self, message: &ClaimedMessage) -> Delivery {
        let email = match build(message, &self.sender, self.unsubscribe.as_ref()) {
            Ok(email) => email,
            Err(failed) => return failed,
        };
        // One deadline for waiting for a connection and the whole exchange, connecting
        // included, so a message never outlives its dispatch lease. A message dropped
        // mid-exchange leaves its connection closed, not pooled.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let permit = tokio::time::timeout_at(deadline, self.pool.permits.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            return Delivery::Retry(format!(
                "no SMTP connection became free within {} s (all {} are busy)",
                self.timeout.as_secs_f64(),
                self.pool.size
            ));
        };
        let sent = tokio::time::timeout_at(deadline, self.exchange(&email)).await;
        let Ok(sent) = sent else {
            return Delivery::Retry(format!(
                "the SMTP server did not finish the exchange within {} s",
                self.timeout.as_secs_f64()
            ));
        };
        match sent {
            Ok(response) => {
                let text: Vec<&str> = response.message().collect();
                let reference = text.join(" ");
                Delivery::Sent((!reference.trim().is_empty()).then_some(reference))
            }
            Err(failed) => failed,
        }
    }

    /// Sends `email` over a pooled connection (or a new one), and pools it again unless
    /// it broke.
    async fn exchange(&self, email: &Message) -> Result<Response, Delivery> {
        let mut connection = match self.pool.reuse().await {
            Some(connection) => connection,
            None => self.pool.connect().await?,
        };
        let sent = connection.send(email.envelope(), &email.formatted()).await;
        if connection.has_broken() {
            connection.abort().await;
        } else {
            self.pool.park(connection);
        }
        sent.map_err(|e| classify(&e))
    }
}

impl Pool {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        // A panic while holding the lock cannot leave the list half-changed.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that still answers.
    async fn reuse(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut connection, since) = self.idle().pop()?;
            let idle = since.elapsed();
            if idle > IDLE_TIMEOUT {
                connection.abort().await;
                continue;
            }
            if idle > CHECK_AFTER && !connection.test_connected().await {
                connection.abort().await;
                continue;
            }
            return Some(connection);
        }
    }

    fn park(&self, connection: AsyncSmtpConnection) {
        self.idle().push((connection, Instant::now()));
    }

    /// A new connection: TCP with `TCP_NODELAY`, TLS as configured, `EHLO`, `AUTH`.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Delivery> {
        let server = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                Delivery::Retry(format!(
                    "the SMTP server {server} could not be reached: {e}"
                ))
            })?;
        tcp.set_nodelay(true).map_err(|e| {
            Delivery::Retry(format!(
                "cannot set TCP_NODELAY on the connection to {server}: {e}"
            ))
        })?;
        let handshake = |e: lettre::transport::smtp::Error| {
            Delivery::Retry(format!(
                "the TLS handshake with the SMTP server {server} failed: {e}"
            ))
        };
        let mut connection = match &self.tls {
            Some((TlsMode::Implicit, parameters)) => {
                #[allow(deprecated)] // lettre's only way to TLS over a socket of ours
                let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                stream
                    .upgrade_tls(parameters.clone())
                    .await
                    .map_err(handshake)?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(Encrypted(stream.compat())),
                    &self.hello,
                )
                .await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }
        // A server that turns the connection away (a 554 greeting) says nothing of the
        // message: it waits for a retry, as it does after a 4xx greeting or a timeout.
        .map_err(|e| {
            if e.is_permanent() {
                Delivery::Retry(format!(
                    "the SMTP server {server} refused the connection: {e}"
                ))
            } else {
                classify(&e)
            }
        })?;
        if let Some((TlsMode::Starttls, parameters)) = &self.tls {
            if !connection.can_starttls() {
                connection.abort().await;
                return Err(Delivery::Retry(format!(
                    "the SMTP server {server} does not offer STARTTLS, which is required \
                     (set CAIRN_SMTP_TLS=none only for a relay on a trusted network)"
                )));
            }
            connection
                .starttls(parameters.clone(), &self.hello)
                .await
                .map_err(handshake)?;
        }
        // Refused credentials are the configuration's fault, not the message's: it
        // waits for a retry (and goes once the password is right) instead of failing.
        if let Some((user, credentials)) = &self.credentials
            && let Err(e) = connection.auth(DEFAULT_MECHANISMS, credentials).await
        {
            connection.abort().await;
            return Err(Delivery::Retry(format!(
                "the SMTP server {server} refused the login of `{user}`: {e} (check \
                 CAIRN_SMTP_USER and CAIRN_SMTP_PASSWORD)"
            )));
        }
        Ok(connection)
    }
}

/// An implicit-TLS stream, handed to lettre as a transport of its own.
#[allow(deprecated)]
#[derive(Debug)]
struct Encrypted(Compat<AsyncNetworkStream>);

impl AsyncRead for Encrypted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Encrypted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Encrypted {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.get_ref().peer_addr()
    }
}

/// What an SMTP error means for the message: the server's reason is kept.
fn classify(e: &lettre::transport::smtp::Error) -> Delivery {
    // 530: the server wants a login first: the configuration's fault, not the message's.
    if e.status().is_some_and(|code| code.to_string() == "530") {
        return Delivery::Retry(format!(
            "the SMTP server wants a login before it takes mail: {e} (set CAIRN_SMTP_USER \
             and CAIRN_SMTP_PASSWORD)"
        ));
    }
    if e.is_permanent() {
        Delivery::Failed(
            ErrorKind::Rejected,
            format!("the SMTP server refused the message: {e}"),
        )
    } else if e.is_transient() {
        Delivery::Retry(format!("the SMTP server deferred the message: {e}"))
    } else if e.is_timeout() {
        Delivery::Retry(format!("the SMTP server did not answer in time: {e}"))
    } else {
        Delivery::Retry(format!("the SMTP server could not be reached: {e}"))
    }
}

/// The `Message-ID` of a message: the same for every attempt at it.
pub fn message_id(message: &ClaimedMessage, domain: &str) -> String {
    let hash = sha2::Sha256::digest(message.idempotency_key().as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}.{}@{domain}>", message.id)
}

/// The RFC 5322 message of a rendered email, or why it cannot be sent.
pub fn build(
    message: &ClaimedMessage,
    sender: &Sender,
    unsubscribe: Option<&(String, Vec<u8>)>,
) -> Result<Message, Delivery> {
    let part = |name: &str| {
        message
            .payload
            .get(name)
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let invalid = |why: String| Delivery::Failed(ErrorKind::InvalidMessage, why);
    let to = message.address.parse::<Mailbox>().map_err(|e| {
        Delivery::Failed(
            ErrorKind::InvalidAddress,
            format!("`{}` is not a valid email address: {e}", message.address),
        )
    })?;
    let template = message.template.as_deref().unwrap_or("(none)");
    let subject = part("subject").ok_or_else(|| {
        invalid(format!(
            "template `{template}` rendered an empty subject (was the data it uses missing?)"
        ))
    })?;
    let html = part("html");
    let text = part("text")
        .map(str::to_string)
        .or_else(|| html.map(html_to_text));
    let Some(text) = text else {
        return Err(invalid(format!(
            "template `{template}` rendered an empty body (was the data it uses missing?)"
        )));
    };
    let mut builder = Message::builder()
        .from(sender.from.clone())
        .to(to)
        .subject(subject.replace(['\r', '\n'], " "))
        .message_id(Some(message_id(message, sender.domain())))
        .date_now();
    if let Some(reply_to) = &sender.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    let mut email = match html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html.to_string())),
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text),
        ),
    }
    .map_err(|e| invalid(format!("cannot build the email: {e}")))?;
    let headers = email.headers_mut();
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("X-Cairn-Idempotency-Key"),
        message.idempotency_key(),
    ));
    for (name, value) in crate::dispatch::extra_headers(message) {
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii(name.to_string())
                .map_err(|e| invalid(format!("the header `{name}` is not valid: {e}")))?,
            value.replace(['\r', '\n'], " "),
        ));
    }
    if let Some((base_url, key)) = unsubscribe.filter(|_| message.marketing) {
        // RFC 8058: a POST of `List-Unsubscribe=One-Click` to the https URL unsubscribes.
        let url = crate::links::unsubscribe_url(
            base_url,
            key,
            &message.contact_id,
            &message.id.to_string(),
        );
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{url}>"),
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_string(),
        ));
    }
    Ok(email)
}
