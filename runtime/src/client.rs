//! The admin API from the command line: what `cairn deploy` and `cairn status` call.
//! Blocking, since the CLI does one request at a time.

use crate::admin::Status;
use crate::store::plans::Deployed;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the daemon refused the admin token (401): check `--token` or CAIRN_ADMIN_TOKEN")]
    Unauthorised,
    #[error("the daemon answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the daemon's answer is not what this cairn expects: {0}")]
    Unexpected(String),
}

pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl AdminClient {
    /// A client of the daemon at `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str, token: &str) -> Result<AdminClient, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: base.to_string(),
                message: e.to_string(),
            })?;
        Ok(AdminClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    /// Sends a plan's JSON; the daemon stores it as the next version unless it is the
    /// active one already.
    pub fn deploy(&self, plan_json: &str) -> Result<Deployed, ClientError> {
        let request = self
            .http
            .post(format!("{}/admin/deploy", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(plan_json.to_string());
        self.send(request)
    }

    /// Re-activates the version before the active one.
    pub fn rollback(&self) -> Result<Deployed, ClientError> {
        let request = self
            .http
            .post(format!("{}/admin/deploy?rollback", self.base));
        self.send(request)
    }

    pub fn status(&self) -> Result<Status, ClientError> {
        self.send(self.http.get(format!("{}/admin/status", self.base)))
    }

    /// A contact's trace as JSON.
    pub fn contact(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        let encoded: String = id
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        self.send(
            self.http
                .get(format!("{}/admin/contacts/{encoded}", self.base)),
        )
    }

    fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response =
            request
                .bearer_auth(&self.token)
                .send()
                .map_err(|e| ClientError::Unreachable {
                    url: self.base.clone(),
                    message: e.without_url().to_string(),
                })?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        if status.as_u16() == 401 {
            return Err(ClientError::Unauthorised);
        }
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or(text);
            return Err(ClientError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Unexpected(e.to_string()))
    }
}
