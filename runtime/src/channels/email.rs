//! Email over SMTP with lettre: a pool of connections (STARTTLS, implicit TLS or plain
//! for a local relay, with optional authentication), and each rendered message built
//! as `multipart/alternative` (plain text and HTML) with `Message-ID`, `Date`, `From`,
//! `Reply-To` and, on marketing messages, the RFC 8058 one-click `List-Unsubscribe`
//! headers.
//!
//! The `Message-ID` is derived from the message's idempotency key, so every attempt at
//! one message carries the same id.

use super::{Delivery, SmtpConfig, TlsMode, html_to_text};
use crate::store::channels::ErrorKind;
use crate::store::outbox::ClaimedMessage;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Message, Tokio1Executor};
use serde_json::Value as Json;
use sha2::Digest;

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
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Sender,
    /// `(public base URL, key)` of the signed one-click unsubscribe links.
    unsubscribe: Option<(String, Vec<u8>)>,
    /// How long one message's whole exchange may take.
    timeout: std::time::Duration,
}

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
            TlsMode::Starttls => Tls::Required(tls_parameters()?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters()?),
            TlsMode::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port())
            .tls(tls)
            .timeout(Some(config.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(config.pool_size.max(1))
                    .idle_timeout(std::time::Duration::from_secs(60)),
            );
        if let Some(name) = &config.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            }
            (Some(user), None) => {
                return Err(format!(
                    "the SMTP user `{user}` has no password: set CAIRN_SMTP_PASSWORD or \
                     CAIRN_SMTP_PASSWORD_FILE"
                ));
            }
            _ => {}
        }
        Ok(SmtpChannel {
            transport: builder.build(),
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
        // lettre's own timeout covers connecting only: the whole exchange gets one too.
        // A message dropped mid-exchange leaves its connection closed, not pooled.
        let sent = tokio::time::timeout(self.timeout, self.transport.send(email)).await;
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
            Err(e) => classify(&e),
        }
    }
}

/// What an SMTP error means for the message: the server's reason is kept.
fn classify(e: &lettre::transport::smtp::Error) -> Delivery {
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
