//! SMS and push through HTTP provider APIs.
//!
//! - SMS, generic JSON: `POST url` with `{"to", "from", "text", "reference",
//!   "status_callback"}`, `Authorization: Bearer TOKEN` and an `Idempotency-Key`
//!   header; the answer's `id` is the provider's id of the message.
//! - SMS, Twilio: `POST {url}/2010-04-01/Accounts/{sid}/Messages.json` with the form
//!   fields `To`, `From`, `Body` and `StatusCallback`, basic auth with the account SID
//!   and auth token; the answer's `sid` is the message's id.
//! - Push: `POST url` with `{"to", "title", "body", "url", "reference",
//!   "status_callback"}`, a bearer token and the same `X-Cairn-Signature` as webhooks.
//!
//! A 2xx is sent; 408, 429, 5xx, timeouts and unreachable servers are retried; any
//! other status is a rejection, kept with the provider's own message.

use super::{Delivery, PushConfig, SmsApi, SmsConfig, phone};
use crate::store::channels::ErrorKind;
use crate::store::outbox::ClaimedMessage;
use serde_json::{Value as Json, json};

/// An SMS provider.
#[derive(Clone)]
pub struct SmsChannel {
    config: SmsConfig,
    http: reqwest::Client,
    /// Where the provider posts delivery statuses.
    callback_url: Option<String>,
}

impl SmsChannel {
    pub fn new(config: SmsConfig, public_url: Option<&str>) -> Result<SmsChannel, String> {
        if let SmsApi::Twilio { .. } = config.api
            && config.token.is_none()
        {
            return Err("the Twilio SMS provider needs CAIRN_SMS_TOKEN (the auth token)".into());
        }
        phone::e164(&config.from)
            .or_else(|e| {
                // An alphanumeric sender id (`Cairn`) is fine too.
                let alphanumeric = !config.from.is_empty()
                    && config.from.len() <= 11
                    && config
                        .from
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == ' ');
                if alphanumeric {
                    Ok(config.from.clone())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| format!("the SMS sender is not valid: {e}"))?;
        let http = client(config.timeout)?;
        let callback_url =
            public_url.map(|base| format!("{}/v1/channels/sms/status", base.trim_end_matches('/')));
        Ok(SmsChannel {
            config,
            http,
            callback_url,
        })
    }

    pub async fn deliver(&self, message: &ClaimedMessage) -> Delivery {
        let to = match phone::e164(&message.address) {
            Ok(to) => to,
            Err(why) => return Delivery::Failed(ErrorKind::InvalidAddress, why),
        };
        let Some(text) = message
            .payload
            .get("text")
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Delivery::Failed(
                ErrorKind::InvalidMessage,
                format!(
                    "template `{}` rendered an empty text (was the data it uses missing?)",
                    message.template.as_deref().unwrap_or("(none)")
                ),
            );
        };
        let request = match &self.config.api {
            SmsApi::Json => {
                let mut body = json!({
                    "to": to,
                    "from": self.config.from,
                    "text": text,
                    "reference": message.idempotency_key(),
                });
                if let Some(url) = &self.callback_url {
                    body["status_callback"] = json!(url);
                }
                let mut request = self
                    .http
                    .post(&self.config.url)
                    .header("Idempotency-Key", message.idempotency_key())
                    .json(&body);
                if let Some(token) = &self.config.token {
                    request = request.bearer_auth(token);
                }
                request
            }
            SmsApi::Twilio { account_sid } => {
                let url = format!(
                    "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                    self.config.url.trim_end_matches('/')
                );
                let mut form = vec![
                    ("To", to.as_str()),
                    ("From", self.config.from.as_str()),
                    ("Body", text),
                ];
                if let Some(callback) = &self.callback_url {
                    form.push(("StatusCallback", callback.as_str()));
                }
                self.http
                    .post(url)
                    .basic_auth(account_sid, self.config.token.as_deref())
                    .form(&form)
            }
        };
        let id_field = match self.config.api {
            SmsApi::Json => "id",
            SmsApi::Twilio { .. } => "sid",
        };
        send(request, "the SMS provider", id_field).await
    }
}

/// A push provider.
#[derive(Clone)]
pub struct PushChannel {
    config: PushConfig,
    http: reqwest::Client,
    callback_url: Option<String>,
}

impl PushChannel {
    pub fn new(config: PushConfig, public_url: Option<&str>) -> Result<PushChannel, String> {
        let http = client(config.timeout)?;
        let callback_url = public_url
            .map(|base| format!("{}/v1/channels/push/status", base.trim_end_matches('/')));
        Ok(PushChannel {
            config,
            http,
            callback_url,
        })
    }

    pub async fn deliver(&self, message: &ClaimedMessage) -> Delivery {
        let token = message.address.trim();
        if token.is_empty() || token.len() > 4096 || token.contains(char::is_whitespace) {
            return Delivery::Failed(
                ErrorKind::InvalidAddress,
                format!("`{}` is not a push token", message.address),
            );
        }
        let part = |name: &str| {
            message
                .payload
                .get(name)
                .and_then(Json::as_str)
                .map(str::trim)
                .filter(|t| !t.is_empty())
        };
        let (Some(title), Some(body)) = (part("title"), part("body")) else {
            return Delivery::Failed(
                ErrorKind::InvalidMessage,
                format!(
                    "template `{}` rendered an empty title or body (was the data it uses missing?)",
                    message.template.as_deref().unwrap_or("(none)")
                ),
            );
        };
        let mut json = json!({
            "to": token,
            "title": title,
            "body": body,
            "reference": message.idempotency_key(),
        });
        if let Some(url) = part("url") {
            json["url"] = json!(url);
        }
        if let Some(url) = &self.callback_url {
            json["status_callback"] = json!(url);
        }
        let bytes = serde_json::to_vec(&json).unwrap_or_default();
        let mut request = self
            .http
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", message.idempotency_key());
        if let Some(secret) = &self.config.token {
            let timestamp = jiff::Timestamp::now().as_second();
            request = request
                .bearer_auth(secret)
                .header("X-Cairn-Timestamp", timestamp.to_string())
                .header(
                    "X-Cairn-Signature",
                    crate::dispatch::sign(secret, timestamp, &bytes),
                );
        }
        send(request.body(bytes), "the push provider", "id").await
    }
}

fn client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// Sends a provider request and reads what it came to.
async fn send(request: reqwest::RequestBuilder, who: &str, id_field: &str) -> Delivery {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            return Delivery::Retry(format!("{who} did not answer in time"));
        }
        Err(e) => return Delivery::Retry(format!("{who} could not be reached: {e}")),
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let json: Option<Json> = serde_json::from_str(&text).ok();
    if status.is_success() {
        let id = json
            .as_ref()
            .and_then(|j| j.get(id_field))
            .and_then(|v| match v {
                Json::String(s) => Some(s.clone()),
                Json::Number(n) => Some(n.to_string()),
                _ => None,
            });
        return Delivery::Sent(id);
    }
    // The provider's own words: `message` (Twilio, most JSON APIs) or `error`.
    let said = json
        .as_ref()
        .and_then(|j| {
            j.get("message")
                .or_else(|| j.get("error"))
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
        })
        .or_else(|| {
            let t = text.trim();
            (!t.is_empty()).then(|| t.chars().take(300).collect())
        });
    let reason = match said {
        Some(said) => format!("{who} answered {status}: {said}"),
        None => format!("{who} answered {status}"),
    };
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        Delivery::Retry(reason)
    } else {
        Delivery::Failed(ErrorKind::Rejected, reason)
    }
}
