//! Dispatch throughput of the real channels, for `cargo bench -p cairn-runtime --bench
//! channels`: a store filled with queued messages, then the dispatcher drains it into
//! an SMTP server (aiosmtpd started from `CAIRN_TEST_PYTHON`, or any server at
//! `CAIRN_BENCH_SMTP=host:port`, such as postfix's `smtp-sink`) or into an HTTP SMS
//! provider on loopback, and the rate messages are recorded as sent is measured.

use super::{SmsApi, SmsConfig, SmtpConfig, TlsMode};
use crate::dispatch::{DispatchConfig, Dispatcher};
use crate::engine::Links;
use crate::model::{Effects, OutboxMessage};
use crate::process::Core;
use crate::store::Store;
use crate::time::SystemClock;
use serde_json::json;
use std::io::BufRead as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An aiosmtpd process (`runtime/tests/smtp/server.py`), stopped when dropped.
pub struct SmtpSink {
    child: std::process::Child,
    pub port: u16,
}

impl SmtpSink {
    /// Starts the test SMTP server with `python` on a free port, writing what it
    /// accepts to `maildir` (or only counting it).
    pub fn start(python: &str, maildir: &Path, count_only: bool) -> Result<SmtpSink, String> {
        let port = free_port()?;
        SmtpSink::start_on(python, port, maildir, count_only)
    }

    pub fn start_on(
        python: &str,
        port: u16,
        maildir: &Path,
        count_only: bool,
    ) -> Result<SmtpSink, String> {
        SmtpSink::start_with(python, port, maildir, count_only, &[])
    }

    /// Starts it with more of `server.py`'s options (`--tls-cert`, `--tls`...).
    pub fn start_with(
        python: &str,
        port: u16,
        maildir: &Path,
        count_only: bool,
        options: &[&std::ffi::OsStr],
    ) -> Result<SmtpSink, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut command = std::process::Command::new(python);
        command
            .arg(&script)
            .arg(port.to_string())
            .arg(maildir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if count_only {
            command.arg("--count-only");
        }
        command.args(options);
        let mut child = command
            .spawn()
            .map_err(|e| format!("`{python}` cannot be started: {e}"))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        }
        if line.trim() != "READY" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the SMTP server did not start with `{python}` (is aiosmtpd installed for it?)"
            ));
        }
        Ok(SmtpSink { child, port })
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python with aiosmtpd named by `CAIRN_TEST_PYTHON`, or `None` (with a note naming
/// `test`) when it is unset on a developer's machine. Under CI (`CI` set) a missing
/// Python is an error, so that SMTP tests never pass by being skipped.
pub fn test_python(test: &str) -> Option<String> {
    match std::env::var("CAIRN_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var_os("CI").is_some() => panic!(
            "{test}: CAIRN_TEST_PYTHON is unset under CI: set it to a Python with aiosmtpd \
             (.ci/run installs one in target/sdk-venv)"
        ),
        Err(_) => {
            eprintln!("{test}: SMTP not tested against a real server (CAIRN_TEST_PYTHON is unset)");
            None
        }
    }
}

/// A port nothing listens on at the moment.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Queues `count` messages of `channel` for contact `bench`, in one transaction.
pub async fn queue(store: &Store, channel: &str, count: usize) -> Result<(), String> {
    // A marketing template: emails carry a signed one-click unsubscribe link.
    let mut plan = cairn_plan::Plan::new("bench");
    plan.templates.insert(
        "bench".into(),
        cairn_plan::Template {
            name: "bench".into(),
            channel: cairn_plan::Channel::Email,
            transactional: false,
            parts: std::collections::BTreeMap::new(),
        },
    );
    let now = jiff::Timestamp::now().as_millisecond();
    let messages = (0..count)
        .map(|i| OutboxMessage {
            run_id: "bench/bench/1".into(),
            step: format!("m{i}"),
            visit: 1,
            channel: channel.into(),
            template: Some("bench".into()),
            address: match channel {
                "email" => format!("contact{i}@example.com"),
                _ => format!("+1555{:07}", i % 10_000_000),
            },
            payload: json!({
                "subject": "Your cart is waiting",
                "html": "<p>Hello, your <b>cart</b> is waiting.</p>",
                "text": "Hello, your cart is waiting.",
            }),
            not_before: 0,
        })
        .collect();
    let effects = Effects {
        messages,
        ..Effects::default()
    };
    let e = |e: crate::store::StoreError| e.to_string();
    let mut tx = store.begin().await.map_err(e)?;
    let mut state = tx.load_state("bench", now).await.map_err(e)?;
    tx.apply_effects(&mut state, &effects, &plan, now)
        .await
        .map_err(e)?;
    tx.commit().await.map_err(e)
}

/// How a run went.
#[derive(Debug, Clone, Copy)]
pub struct Drained {
    pub sent: i64,
    pub failed: i64,
    pub elapsed: Duration,
}

/// Dispatches until nothing is pending; the time it took.
pub async fn drain(store: &Store, config: DispatchConfig) -> Result<Drained, String> {
    let core = Arc::new(Core::new(
        store.clone(),
        Arc::new(SystemClock),
        Links::default(),
        "bench".into(),
    ));
    let dispatcher = Dispatcher::new(core, config)?;
    let start = Instant::now();
    loop {
        let handled = dispatcher
            .dispatch_once()
            .await
            .map_err(|e| e.to_string())?;
        if handled == 0 {
            let counts = store.outbox_counts().await.map_err(|e| e.to_string())?;
            if counts.pending == 0 {
                return Ok(Drained {
                    sent: counts.sent,
                    failed: counts.failed,
                    elapsed: start.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A dispatcher configuration sending email to `host:port` without TLS.
pub fn smtp_config(outbox: &Path, host: &str, port: u16, pool: u32) -> DispatchConfig {
    let mut config = DispatchConfig::new(outbox.to_path_buf(), "bench".into());
    let mut smtp = SmtpConfig::new(host);
    smtp.port = Some(port);
    smtp.tls = TlsMode::None;
    smtp.pool_size = pool;
    config.smtp = Some(smtp);
    config.email_from = "Bench <bench@example.com>".into();
    config.public_url = Some("https://cairn.example.com".into());
    config.link_secret = Some(b"bench".to_vec());
    config.batch = 256;
    config
}

/// A dispatcher configuration sending SMS to a JSON provider at `url`.
pub fn sms_config(outbox: &Path, url: &str) -> DispatchConfig {
    let mut config = DispatchConfig::new(outbox.to_path_buf(), "bench".into());
    config.sms = Some(SmsConfig {
        api: SmsApi::Json,
        url: url.to_string(),
        token: Some("bench".into()),
        from: "Bench".into(),
        timeout: Duration::from_secs(10),
    });
    config.batch = 256;
    config
}

/// An SMS provider on loopback that accepts everything.
pub async fn sms_sink() -> Result<String, String> {
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post(|| async { axum::Json(json!({"id": "ok"})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/sms",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
