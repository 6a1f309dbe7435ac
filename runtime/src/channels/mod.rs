//! Real channels: email over SMTP (lettre, pooled), SMS through an HTTP provider (a
//! generic JSON API or Twilio's form API) and mobile push through a webhook-style
//! provider. Each turns one claimed outbox message into a [`Delivery`]: sent (with the
//! provider's id of it), worth retrying, or failed for good with a kind and a reason.
//! A channel that is not configured falls back to the file outbox.
//!
//! Delivery status callbacks from providers arrive on `POST /v1/channels/{sms,push}/status`
//! ([`callbacks`]) and update the message and feed `sms_delivered` / `push_opened` into
//! the engine.

pub mod bench;
pub mod callbacks;
pub mod email;
pub mod http;
pub mod phone;
#[cfg(test)]
pub(crate) mod tests;

use crate::store::channels::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted; the provider's id of the message when it gave one.
    Sent(Option<String>),
    /// Worth trying again later.
    Retry(String),
    /// Never going to work.
    Failed(ErrorKind, String),
}

impl Delivery {
    pub fn sent() -> Delivery {
        Delivery::Sent(None)
    }
}

/// How email leaves the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 with STARTTLS, 465 with implicit TLS, 25 without TLS.
    pub port: Option<u16>,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A PEM file of extra certificate authorities to trust (a private CA).
    pub ca_file: Option<PathBuf>,
    /// The name given in `EHLO`; default: this machine's host name.
    pub hello_name: Option<String>,
    /// Connections kept open to the server.
    pub pool_size: u32,
    /// How long connecting may take, and how long one message's whole exchange may.
    pub timeout: Duration,
}

impl SmtpConfig {
    pub fn new(host: &str) -> SmtpConfig {
        SmtpConfig {
            host: host.to_string(),
            port: None,
            tls: TlsMode::Starttls,
            username: None,
            password: None,
            ca_file: None,
            hello_name: None,
            pool_size: 10,
            timeout: Duration::from_secs(30),
        }
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        })
    }
}

/// How the SMTP connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connection upgraded with `STARTTLS`, which is required.
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No encryption: for a relay on the same machine or network.
    None,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(text: &str) -> Result<TlsMode, String> {
        match text {
            "starttls" => Ok(TlsMode::Starttls),
            "tls" | "implicit" => Ok(TlsMode::Implicit),
            "none" | "plain" => Ok(TlsMode::None),
            other => Err(format!(
                "`{other}` is not a TLS mode: expected `starttls`, `tls` (implicit) or `none`"
            )),
        }
    }
}

/// The SMS provider's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsApi {
    /// `POST url` with `{"to", "from", "text", "reference"}` and a bearer token.
    Json,
    /// Twilio's `POST {url}/2010-04-01/Accounts/{account}/Messages.json` form, basic
    /// auth with the account SID and auth token.
    Twilio { account_sid: String },
}

/// How SMS leave the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsConfig {
    pub api: SmsApi,
    /// The provider's endpoint (JSON), or its API base (Twilio; default
    /// `https://api.twilio.com`).
    pub url: String,
    /// The bearer token (JSON) or auth token (Twilio). It also checks callbacks.
    pub token: Option<String>,
    /// The sender: a phone number, a short code or an alphanumeric sender id.
    pub from: String,
    pub timeout: Duration,
}

/// How push notifications leave the daemon: a JSON POST per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    pub url: String,
    /// Sent as a bearer token; also the key of callbacks' signatures.
    pub token: Option<String>,
    pub timeout: Duration,
}

/// Strips the tags of an HTML part into a plain-text alternative, for emails whose
/// template has no `text` part: block ends become line breaks, the common entities
/// are decoded, runs of blank lines are folded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('>') else {
            rest = &rest[at..];
            break;
        };
        let tag = rest[at + 1..at + end].trim().to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        if matches!(
            name,
            "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "table"
        ) {
            out.push('\n');
        }
        if matches!(name, "style" | "script" | "head") && !tag.starts_with('/') {
            let close = format!("</{name}");
            let lower = rest[at..].to_ascii_lowercase();
            match lower.find(&close) {
                Some(c) => {
                    let after = at + c;
                    let end = rest[after..]
                        .find('>')
                        .map_or(rest.len(), |e| after + e + 1);
                    rest = &rest[end..];
                    continue;
                }
                None => {
                    rest = "";
                    break;
                }
            }
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut text = String::new();
    let mut blank = 0;
    for line in decoded.lines().map(str::trim) {
        if line.is_empty() {
            blank += 1;
            if blank > 1 || text.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        text.push_str(line);
        text.push('\n');
    }
    text.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn html_becomes_readable_text() {
        let html = "<html><head><style>p{color:red}</style></head><body><h1>Hi Ana</h1>\
                    <p>Your cart &amp; you.</p><p>See <a href=\"x\">it</a></p></body></html>";
        assert_eq!(html_to_text(html), "Hi Ana\n\nYour cart & you.\n\nSee it\n");
    }

    #[test]
    fn tls_modes_parse_and_pick_ports() {
        let mut smtp = SmtpConfig::new("mail.example.com");
        assert_eq!(smtp.port(), 587);
        smtp.tls = "tls".parse().expect("a mode");
        assert_eq!(smtp.port(), 465);
        smtp.tls = "none".parse().expect("a mode");
        assert_eq!(smtp.port(), 25);
        let error = "ssl".parse::<TlsMode>().expect_err("not a mode");
        assert!(error.contains("starttls"), "{error}");
    }
}
