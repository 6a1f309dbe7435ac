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

    /// Like [`AdminClient::deploy`]; with `strand`, the daemon deploys even when runs in
    /// flight would be stranded (they stay on their version) instead of refusing.
    pub fn deploy_stranding(&self, plan_json: &str, strand: bool) -> Result<Deployed, ClientError> {
        let query = if strand { "?strand" } else { "" };
        let request = self
            .http
            .post(format!("{}/admin/deploy{query}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(plan_json.to_string());
        self.send(request)
    }

    /// The active plan's JSON; `None` when nothing is deployed yet.
    pub fn active_plan(&self) -> Result<Option<serde_json::Value>, ClientError> {
        match self.send(self.http.get(format!("{}/admin/plan", self.base))) {
            Ok(plan) => Ok(Some(plan)),
            Err(ClientError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
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

    /// The latest `limit` messages in `state` (`pending`, `sending`, `sent`, `failed`).
    pub fn messages(
        &self,
        state: &str,
        limit: i64,
    ) -> Result<Vec<crate::store::channels::MessageRow>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Messages {
            messages: Vec<crate::store::channels::MessageRow>,
        }
        let request = self
            .http
            .get(format!("{}/admin/messages", self.base))
            .query(&[("state", state.to_string()), ("limit", limit.to_string())]);
        let listed: Messages = self.send(request)?;
        Ok(listed.messages)
    }

    /// The events the daemon stored for `[from, to)`, as Segment messages, one JSON
    /// object per line.
    pub fn events(
        &self,
        from: crate::model::Millis,
        to: crate::model::Millis,
    ) -> Result<String, ClientError> {
        let stamp = |ms| crate::time::timestamp(ms).to_string();
        let request = self
            .http
            .get(format!("{}/admin/events", self.base))
            .query(&[("from", stamp(from)), ("to", stamp(to))]);
        let response =
            request
                .bearer_auth(&self.token)
                .send()
                .map_err(|e| ClientError::Unreachable {
                    url: self.base.clone(),
                    message: e.without_url().to_string(),
                })?;
        let status = response.status();
        let text = response.text().map_err(|e| {
            ClientError::Unexpected(format!("the events stopped half-way: {}", e.without_url()))
        })?;
        match status.as_u16() {
            401 => Err(ClientError::Unauthorised),
            200 => Ok(text),
            code => Err(ClientError::Refused {
                status: code,
                message: serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                    .unwrap_or(text),
            }),
        }
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

    /// Everything the daemon holds about a contact (`GET /admin/contacts/{id}/export`).
    pub fn export_contact(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/admin/contacts/{}/export", self.base, path_segment(id));
        self.send(self.http.get(url))
    }

    /// A contact's runs line by line and why it is not in the other journeys
    /// (`GET /admin/contacts/{id}/trace`), for one journey or all, from `since` on.
    pub fn trace(
        &self,
        id: &str,
        journey: Option<&str>,
        since: Option<crate::model::Millis>,
    ) -> Result<crate::trace::Trace, ClientError> {
        let url = format!("{}/admin/contacts/{}/trace", self.base, path_segment(id));
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(journey) = journey {
            query.push(("journey", journey.to_string()));
        }
        if let Some(since) = since {
            query.push(("since", crate::time::timestamp(since).to_string()));
        }
        self.send(self.http.get(url).query(&query))
    }

    /// Erases a contact (`POST /admin/contacts/{id}/erase`).
    pub fn erase_contact(&self, id: &str) -> Result<crate::store::rights::Erasure, ClientError> {
        let url = format!("{}/admin/contacts/{}/erase", self.base, path_segment(id));
        self.send(self.http.post(url))
    }

    /// Imports one chunk of contacts (`POST /admin/contacts/import`); `rows` are the
    /// file's rows as JSON, each with its `line`. A chunk refused for bad rows answers
    /// with the report of what was wrong, as an `Ok` with `applied` false.
    pub fn import_contacts(
        &self,
        rows: &[serde_json::Value],
        dry_run: bool,
        skip_invalid: bool,
    ) -> Result<crate::admin::ImportReport, ClientError> {
        let flags: Vec<(&str, &str)> = [("dry_run", dry_run), ("skip_invalid", skip_invalid)]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(flag, _)| (flag, ""))
            .collect();
        let request = self
            .http
            .post(format!("{}/admin/contacts/import", self.base))
            .query(&flags)
            .json(&serde_json::json!({ "rows": rows }));
        match self.send(request) {
            Err(ClientError::Refused {
                status: 400,
                message,
            }) => serde_json::from_str(&message).map_err(|_| ClientError::Refused {
                status: 400,
                message,
            }),
            other => other,
        }
    }

    /// Pauses a journey (`POST /admin/journeys/{name}/pause`).
    pub fn pause_journey(
        &self,
        journey: &str,
    ) -> Result<crate::process::pause::PauseReport, ClientError> {
        let url = format!(
            "{}/admin/journeys/{}/pause",
            self.base,
            path_segment(journey)
        );
        self.send(self.http.post(url))
    }

    /// Resumes a paused journey (`POST /admin/journeys/{name}/resume`).
    pub fn resume_journey(
        &self,
        journey: &str,
    ) -> Result<crate::process::pause::ResumeReport, ClientError> {
        let url = format!(
            "{}/admin/journeys/{}/resume",
            self.base,
            path_segment(journey)
        );
        self.send(self.http.post(url))
    }

    /// The funnels of one journey, or of all (`GET /admin/stats`).
    pub fn stats(&self, journey: Option<&str>) -> Result<crate::stats::StatsReport, ClientError> {
        let mut request = self.http.get(format!("{}/admin/stats", self.base));
        if let Some(journey) = journey {
            request = request.query(&[("journey", journey)]);
        }
        self.send(request)
    }

    /// Sends template `name` of the active plan, rendered for `request`'s sample data,
    /// to `request.to` as a test (`POST /admin/templates/{name}/test-send`).
    pub fn test_send(
        &self,
        name: &str,
        request: &crate::preview::TestSend,
    ) -> Result<crate::preview::TestSent, ClientError> {
        let url = format!(
            "{}/admin/templates/{}/test-send",
            self.base,
            path_segment(name)
        );
        self.send(self.http.post(url).json(request))
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

/// `text` percent-encoded for one segment of a URL path.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
