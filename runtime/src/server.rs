//! The daemon: opens the store, deploys the project's plan when it changed, serves the
//! tracking and admin APIs, and runs the timer worker and the outbox dispatcher until
//! told to stop; then it stops taking requests, drains the queued ones, lets the
//! workers finish the batch they hold, and closes the store.

use crate::admin;
use crate::dispatch::{DispatchConfig, Dispatcher};
use crate::engine::Links;
use crate::ingest::{self, IngestLimits, secret_hash};
use crate::process::Core;
use crate::store::{Backend, Store, StoreError, StoreOptions};
use crate::time::{Clock, SystemClock};
use cairn_plan::Plan;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Everything `cairn serve` decided from its flags, the environment and `cairn.toml`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `sqlite:PATH` or `postgres://...`.
    pub database_url: String,
    /// Where credentials are written on first start (the project's `.cairn/`).
    pub state_dir: PathBuf,
    pub outbox_dir: PathBuf,
    /// The address contacts reach the daemon at, for links in messages.
    pub public_url: String,
    /// The project's plan, deployed on start when its hash is not the active one.
    pub plan: Option<Plan>,
    pub ingest: IngestLimits,
    /// How long a shutdown waits for in-flight work before giving up on it.
    pub shutdown_grace: Duration,
    /// Timers claimed at once.
    pub timer_batch: i64,
    /// How long a claim holds a timer or a message (`CAIRN_LEASE_SECS`): after a
    /// crash, another daemon on the same PostgreSQL database takes the work over once
    /// it expires.
    pub timer_lease: Duration,
    /// How often the timers are polled without a nudge.
    pub timer_poll: Duration,
    /// From the environment; generated and stored on first start otherwise.
    pub write_key: Option<String>,
    pub admin_token: Option<String>,
    pub webhook_secret: Option<String>,
    /// Key of the signed links in messages (unsubscribe, tracking, preferences,
    /// double opt-in); generated and stored on first start otherwise.
    pub link_secret: Option<String>,
    /// Respect for the contact: which consents need double opt-in.
    pub respect: crate::respect::Settings,
    pub email_from: Option<String>,
    pub email_reply_to: Option<String>,
    /// Email over SMTP (`[email]`); the file outbox when `None`.
    pub smtp: Option<crate::channels::SmtpConfig>,
    /// SMS through a provider (`[sms]`); the file outbox when `None`.
    pub sms: Option<crate::channels::SmsConfig>,
    /// Push through a provider (`[push]`); the file outbox when `None`.
    pub push: Option<crate::channels::PushConfig>,
    /// `[retention] events`: events older than this are purged; `None` keeps them.
    pub retention: Option<cairn_plan::Duration>,
    /// How often the retention purge runs after the one at start.
    pub purge_every: Duration,
}

impl ServeConfig {
    pub fn new(database_url: String, state_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            database_url,
            outbox_dir: state_dir.join("outbox"),
            state_dir,
            public_url: "http://127.0.0.1:8080".into(),
            plan: None,
            ingest: IngestLimits::default(),
            shutdown_grace: Duration::from_secs(30),
            timer_batch: 500,
            timer_lease: Duration::from_secs(60),
            timer_poll: Duration::from_secs(1),
            write_key: None,
            admin_token: None,
            webhook_secret: None,
            link_secret: None,
            respect: crate::respect::Settings::default(),
            email_from: None,
            email_reply_to: None,
            smtp: None,
            sms: None,
            push: None,
            retention: None,
            purge_every: crate::retention::PURGE_EVERY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
    #[error("the project's plan cannot be deployed: {0}")]
    Plan(String),
}

/// The secrets of a daemon, as the store keeps them (hashes) and as first start tells
/// the user (the credentials file).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub write_key_sha256: String,
    pub admin_token_sha256: String,
    pub webhook_secret: String,
    /// Where the plain values were written, when this start generated them.
    pub written_to: Option<PathBuf>,
}

/// The name of the credentials file in the state directory.
pub const CREDENTIALS_FILE: &str = "credentials";

/// Reads the daemon's credentials: from the environment when set, else from the
/// store; on the very first start they are generated, their hashes stored and the
/// plain values written to `state_dir/credentials` (readable by the owner only).
pub async fn credentials(store: &Store, config: &ServeConfig) -> Result<Credentials, ServeError> {
    let mut generated: Vec<(&str, String)> = Vec::new();
    let mut hashes = Vec::new();
    for (label, from_env, prefix) in [
        ("write_key", &config.write_key, "wk_"),
        ("admin_token", &config.admin_token, "at_"),
    ] {
        let key = format!("{label}_sha256");
        let hash = match (from_env, store.setting(&key).await?) {
            (Some(value), _) => secret_hash(value),
            (None, Some(hash)) => hash,
            (None, None) => {
                let value = format!("{prefix}{}", random_hex(24));
                // Another daemon on the same database may win the race: keep its value.
                let kept = store.setting_or_insert(&key, &secret_hash(&value)).await?;
                if kept == secret_hash(&value) {
                    generated.push((label, value));
                }
                kept
            }
        };
        hashes.push(hash);
    }
    let webhook_secret = match &config.webhook_secret {
        Some(secret) => secret.clone(),
        None => {
            let secret = format!("whs_{}", random_hex(24));
            store.setting_or_insert("webhook_secret", &secret).await?
        }
    };
    let written_to = if generated.is_empty() {
        None
    } else {
        Some(write_credentials(&config.state_dir, &generated)?)
    };
    let admin_token_sha256 = hashes.pop().unwrap_or_default();
    let write_key_sha256 = hashes.pop().unwrap_or_default();
    Ok(Credentials {
        write_key_sha256,
        admin_token_sha256,
        webhook_secret,
        written_to,
    })
}

fn write_credentials(dir: &Path, values: &[(&str, String)]) -> Result<PathBuf, ServeError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ServeError::Io(format!("cannot create `{}`: {e}", dir.display())))?;
    let path = dir.join(CREDENTIALS_FILE);
    let mut text = String::from(
        "# Cairn daemon credentials, generated on first start. Keep this file secret;\n\
         # the daemon stores only their hashes. CAIRN_WRITE_KEY and CAIRN_ADMIN_TOKEN\n\
         # override them.\n",
    );
    // Keep what an earlier start wrote for values not generated now.
    if let Ok(existing) = std::fs::read_to_string(&path) {
        for line in existing.lines() {
            let key = line.split('=').next().unwrap_or_default().trim();
            if !line.starts_with('#') && !key.is_empty() && !values.iter().any(|(k, _)| *k == key) {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    for (key, value) in values {
        text.push_str(&format!("{key} = \"{value}\"\n"));
    }
    write_private(&path, &text)
        .map_err(|e| ServeError::Io(format!("cannot write `{}`: {e}", path.display())))?;
    Ok(path)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Reads one value (`write_key`, `admin_token`) from a credentials file.
pub fn read_credential(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    if getrandom::fill(&mut buffer).is_err() {
        // No OS randomness: fall back to the clock and the process id, hashed.
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        return secret_hash(&seed)[..bytes * 2].to_string();
    }
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a start reports to the person who ran `cairn serve`.
#[derive(Debug, Clone)]
pub struct Started {
    pub listening: std::net::SocketAddr,
    pub backend: Backend,
    pub credentials_file: Option<PathBuf>,
    pub deployed: Option<crate::store::plans::Deployed>,
    pub active_version: Option<i64>,
}

/// Runs the daemon on `listener` until `shutdown` resolves. `on_start` is called once
/// everything is ready, before the first request is served.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(&Started),
) -> Result<(), ServeError> {
    run_with_clock(config, listener, shutdown, on_start, Arc::new(SystemClock)).await
}

pub async fn run_with_clock(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(&Started),
    clock: Arc<dyn Clock>,
) -> Result<(), ServeError> {
    // One daemon per SQLite file: the lock is held until this function returns.
    let _daemon_lock = match crate::store::sqlite_file(&config.database_url) {
        Some(path) if !path.to_string_lossy().starts_with(":memory:") => {
            Some(lock_sqlite_file(&path)?)
        }
        _ => None,
    };
    let options = StoreOptions::default();
    let store = Store::open_with(&config.database_url, &options).await?;
    if store.backend() == Backend::Sqlite {
        // This daemon is the file's only worker: leases left by one that died (killed,
        // or the machine lost power) are stale, and waiting for them to expire would
        // only delay its timers and messages.
        let (timers, messages) = store.release_all_leases().await?;
        if timers + messages > 0 {
            tracing::info!(
                timers,
                messages,
                "took back the work a previous daemon held when it stopped"
            );
        }
    }
    let credentials = credentials(&store, &config).await?;
    let worker_id = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "cairn".into()),
        std::process::id(),
        random_hex(4)
    );
    let links = Links {
        base_url: config.public_url.clone(),
        secret: crate::respect::link_secret(&store, config.link_secret.as_deref())
            .await?
            .into_bytes(),
    };
    let mut core = Core::new(store.clone(), clock, links, worker_id);
    core.respect = config.respect.clone();
    core.retention = config.retention;
    let core = Arc::new(core);

    let deployed = match &config.plan {
        Some(plan) => {
            let text = plan.to_json_pretty();
            admin::check_plan(&text).map_err(ServeError::Plan)?;
            crate::respect::check_settings(plan, &config.respect).map_err(ServeError::Plan)?;
            match admin::deploy_plan(&core, &text, plan, false).await {
                Ok(deployed) => Some(deployed),
                // Runs in flight would be stranded: the user decides, not a restart.
                Err(crate::store::StoreError::Conflict(refusal)) => {
                    return Err(ServeError::Plan(refusal));
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => None,
    };
    let active = core.reload_active().await?;
    if let (Some(retention), Some(active)) = (config.retention, &active) {
        // The plan deployed above was checked; an older active one is checked here.
        crate::retention::check_plan(&active.plan, Some(retention)).map_err(ServeError::Plan)?;
        for read in crate::retention::unbounded_reads(&active.plan) {
            tracing::warn!(
                "{read} reads events without a window: it sees only the events kept for `[retention] events`"
            );
        }
    }

    let mut limits = config.ingest.clone();
    if store.backend() == Backend::Postgres && limits.writers < 2 {
        limits.writers = 4;
    }
    let (ingest_routes, writers) =
        ingest::router(core.clone(), credentials.write_key_sha256.clone(), limits);
    let callback_keys = crate::channels::callbacks::CallbackKeys {
        sms: config
            .sms
            .as_ref()
            .and_then(|s| s.token.clone().map(|t| (s.api.clone(), t))),
        push: config.push.as_ref().and_then(|p| p.token.clone()),
        public_url: config.public_url.clone(),
    };
    let mut dispatch_config = DispatchConfig::new(
        config.outbox_dir.clone(),
        credentials.webhook_secret.clone(),
    );
    if let Some(from) = &config.email_from {
        dispatch_config.email_from = from.clone();
    }
    dispatch_config.lease = config.timer_lease;
    dispatch_config.email_reply_to = config.email_reply_to.clone();
    dispatch_config.smtp = config.smtp.clone();
    dispatch_config.sms = config.sms.clone();
    dispatch_config.push = config.push.clone();
    dispatch_config.public_url = Some(config.public_url.clone());
    dispatch_config.link_secret = Some(core.links.secret.clone());
    let test_sender = crate::dispatch::TestSender::new(&dispatch_config)
        .map_err(|e| ServeError::Io(format!("cannot set up the channels: {e}")))?;
    let app = ingest_routes
        .merge(crate::channels::callbacks::router(
            core.clone(),
            callback_keys,
        ))
        .merge(admin::open_router(core.clone()))
        .merge(admin::behind_token(
            admin::router(core.clone())
                .merge(admin::test_send_router(core.clone(), test_sender))
                .merge(crate::respect::admin_router(core.clone())),
            credentials.admin_token_sha256.clone(),
        ))
        .merge(crate::respect::router(
            core.clone(),
            credentials.webhook_secret.clone(),
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(60),
        ));

    let (stop_tx, stop_rx) = watch::channel(false);
    let timers = tokio::spawn(timer_worker(core.clone(), config.clone(), stop_rx.clone()));
    let checkpoints = tokio::spawn(checkpointer(store.clone(), stop_rx.clone()));
    let purge = config.retention.map(|retention| {
        tokio::spawn(crate::retention::purger(
            core.clone(),
            retention,
            config.purge_every,
            stop_rx.clone(),
        ))
    });
    let dispatcher = Dispatcher::new(core.clone(), dispatch_config)
        .map_err(|e| ServeError::Io(format!("cannot set up the channels: {e}")))?;
    let dispatch = tokio::spawn(dispatcher.run(stop_rx));

    let listening = listener
        .local_addr()
        .map_err(|e| ServeError::Io(format!("cannot read the listening address: {e}")))?;
    on_start(&Started {
        listening,
        backend: store.backend(),
        credentials_file: credentials.written_to.clone(),
        deployed,
        active_version: active.map(|a| a.version),
    });
    tracing::info!(%listening, backend = store.backend().as_str(), "cairn serve is ready");

    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServeError::Io(format!("the HTTP server failed: {e}")));
    tracing::info!("shutting down: draining queued events and in-flight work");

    // The router (and with it the queue's sender) is gone: writers drain and end.
    let grace = config.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        for writer in writers {
            let _ = writer.await;
        }
    })
    .await;
    let _ = stop_tx.send(true);
    let workers = tokio::time::timeout(grace, async {
        let _ = timers.await;
        let _ = dispatch.await;
        let _ = checkpoints.await;
        if let Some(purge) = purge {
            let _ = purge.await;
        }
    })
    .await;
    if drained.is_err() || workers.is_err() {
        tracing::warn!("in-flight work did not finish within the grace period; leases will expire");
    }
    store.close().await;
    served
}

/// Takes the exclusive lock that makes one daemon the only one on a SQLite file (an
/// advisory lock on `FILE.daemon-lock`, released when the returned file is dropped or
/// the process dies).
fn lock_sqlite_file(path: &Path) -> Result<std::fs::File, ServeError> {
    let mut name = path.as_os_str().to_os_string();
    name.push(".daemon-lock");
    let lock_path = PathBuf::from(name);
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| ServeError::Io(format!("cannot create `{}`: {e}", parent.display())))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| ServeError::Io(format!("cannot open `{}`: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::Io(format!(
            "another `cairn serve` is running on `{}` (it holds `{}`): run one daemon per \
             SQLite file, or use PostgreSQL for several",
            path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(ServeError::Io(format!(
            "cannot lock `{}`: {e}",
            lock_path.display()
        ))),
    }
}

/// Runs the daemon on a runtime of its own, listening on `listen`, until SIGTERM or
/// Ctrl-C: what `cairn serve` calls.
pub fn serve_blocking(
    config: ServeConfig,
    listen: &str,
    on_start: impl FnOnce(&Started),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cairn")
        .build()
        .map_err(|e| ServeError::Io(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| ServeError::Io(format!("cannot listen on `{listen}`: {e}")))?;
        run(config, listener, shutdown_signal(), on_start).await
    })
}

/// How often the checkpointer copies the SQLite write-ahead log into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// On SQLite, checkpoints the write-ahead log from a reader connection every
/// [`CHECKPOINT_EVERY`], until `stop`, so the single writer does not stop to do it
/// (under a steady load that was an eighth of the writer's time). A no-op on PostgreSQL.
async fn checkpointer(store: Store, mut stop: watch::Receiver<bool>) {
    if store.backend() != Backend::Sqlite {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = store.checkpoint().await {
            tracing::debug!(error = %e, "a WAL checkpoint did not run; the next one will");
        }
    }
}

/// Claims due timers in batches and runs them, until `stop`.
async fn timer_worker(core: Arc<Core>, config: ServeConfig, mut stop: watch::Receiver<bool>) {
    let lease = i64::try_from(config.timer_lease.as_millis()).unwrap_or(60_000);
    // Halved after a batch that failed for good, doubled back after one that worked:
    // when transactions keep failing (connections dropped under it), smaller ones
    // still get through.
    let mut batch = config.timer_batch.max(1);
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = match timer_round(&core, lease, batch).await {
            TimerRound::Ran => {
                batch = batch.saturating_mul(2).min(config.timer_batch.max(1));
                continue;
            }
            TimerRound::Idle => next_timer_wait(&core, &config).await,
            TimerRound::Failed { wait } => {
                batch = (batch / 2).max(1);
                wait
            }
            TimerRound::Unclaimed { wait } => wait,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = core.timers_changed.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

/// What one round of the timer worker came to.
enum TimerRound {
    /// Timers were due and ran: look for more at once.
    Ran,
    /// Nothing was due.
    Idle,
    /// Running the timers failed; try again after `wait`, with a smaller batch.
    Failed { wait: Duration },
    /// Claiming them failed; try again after `wait`.
    Unclaimed { wait: Duration },
}

/// Runs up to `batch` due timers. A SQLite daemon, the store's one worker, takes and
/// runs them in one transaction; on PostgreSQL they are claimed with a lease first,
/// and given back if running them fails.
async fn timer_round(core: &Core, lease: i64, batch: i64) -> TimerRound {
    let failed = Duration::from_millis(200);
    if core.store.backend() == Backend::Sqlite {
        return match core.run_due_timers(batch).await {
            Ok(0) => TimerRound::Idle,
            Ok(_) => TimerRound::Ran,
            Err(e) => {
                tracing::warn!(error = %e, batch, "running timers failed");
                TimerRound::Failed { wait: failed }
            }
        };
    }
    let now = core.now();
    let timers = match core
        .store
        .claim_timers(&core.worker_id, now, now + lease, batch)
        .await
    {
        Ok(timers) if timers.is_empty() => return TimerRound::Idle,
        Ok(timers) => timers,
        Err(e) => {
            tracing::warn!(error = %e, "claiming timers failed");
            return TimerRound::Unclaimed {
                wait: Duration::from_secs(1),
            };
        }
    };
    match core.run_timers(&timers).await {
        Ok(_) => TimerRound::Ran,
        Err(e) => {
            // Give them back (after the retries `run_timers` made), so they run on the
            // next try rather than when their leases expire.
            let given_back = crate::store::retrying("giving timers back", || {
                core.store.unclaim_timers(&timers, &core.worker_id)
            })
            .await;
            tracing::warn!(error = %e, given_back = ?given_back.ok(), batch, "running timers failed");
            TimerRound::Failed { wait: failed }
        }
    }
}

/// How long the timer worker may sleep when nothing is due: until the next timer, at
/// most `timer_poll`.
async fn next_timer_wait(core: &Core, config: &ServeConfig) -> Duration {
    match core.store.next_timer_due().await {
        Ok(Some(due)) => {
            let ms = u64::try_from((due - core.now()).max(0)).unwrap_or(0);
            Duration::from_millis(ms).min(config.timer_poll)
        }
        Ok(None) => config.timer_poll,
        Err(e) => {
            tracing::warn!(error = %e, "reading the timers failed");
            config.timer_poll
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info` for Cairn).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("cairn_runtime=info,warn"));
    use std::io::IsTerminal as _;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::TestSchema;
    use cairn_plan::journey::{Journey, Reentry, Step, StepKind, Trigger};
    use cairn_plan::schema::{Consent, Field, Type};
    use cairn_plan::{Channel, StepId, Template, TemplatePart};
    use serde_json::json;
    use std::collections::BTreeMap;

    /// `journey welcome { when signup; hi: send email hello; wait 1s; again: send email hello }`
    fn plan() -> Plan {
        let mut plan = crate::test_plans::with_signup("shop");
        plan.schema.contact = vec![Field {
            name: "email".into(),
            ty: Type::scalar("email"),
            optional: true,
            default: None,
        }];
        plan.schema.consents.insert(
            "email_marketing".into(),
            Consent {
                name: "email_marketing".into(),
                channel: Channel::Email,
            },
        );
        plan.templates.insert(
            "hello".into(),
            Template {
                name: "hello".into(),
                channel: Channel::Email,
                transactional: true,
                parts: BTreeMap::from([
                    (
                        "subject".to_string(),
                        TemplatePart {
                            source: "Hi from {{ signup.form }}".into(),
                            file: None,
                        },
                    ),
                    (
                        "text".to_string(),
                        TemplatePart {
                            source: "Hello".into(),
                            file: None,
                        },
                    ),
                ]),
            },
        );
        let step = |id: &str, kind: StepKind, next: Option<&str>| {
            (
                StepId::new(id),
                Step {
                    id: StepId::new(id),
                    kind,
                    next: next.map(StepId::new),
                    source: None,
                },
            )
        };
        let send = || StepKind::Send {
            channel: Channel::Email,
            template: "hello".into(),
            best_time: false,
        };
        plan.journeys.insert(
            "welcome".into(),
            Journey {
                name: "welcome".into(),
                description: None,
                trigger: Trigger::Event {
                    event: "signup".into(),
                    binding: Some("signup".into()),
                    filter: None,
                    unless: None,
                },
                audience: None,
                reentry: Reentry::Once,
                goal: None,
                exits: Vec::new(),
                quiet_hours: None,
                frequency_caps: None,
                migrations: Vec::new(),
                drain: false,
                entry: Some(StepId::new("hi")),
                steps: BTreeMap::from([
                    step("hi", send(), Some("pause")),
                    step("pause", StepKind::Wait { seconds: 1 }, Some("again")),
                    step("again", send(), None),
                ]),
            },
        );
        plan.seal();
        plan
    }

    /// The daemon in this process, on each backend: an event goes in over HTTP, and
    /// both sends (before and after a durable one-second wait) reach the file outbox.
    #[tokio::test]
    async fn events_in_sends_out_on_both_backends() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sqlite = format!("sqlite:{}", dir.path().join("cairn.db").display());
        daemon_round_trip(&sqlite, dir.path().join("sqlite")).await;
        if let Some(schema) = TestSchema::create("daemon").await {
            let url = crate::store::postgres_url_in_schema(&schema.url, &schema.name);
            let outcome =
                tokio::spawn(daemon_round_trip_owned(url, dir.path().join("postgres"))).await;
            schema.drop_schema().await;
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    async fn daemon_round_trip_owned(url: String, state: PathBuf) {
        daemon_round_trip(&url, state).await;
    }

    async fn daemon_round_trip(database: &str, state: PathBuf) {
        let mut config = ServeConfig::new(database.to_string(), state.clone());
        config.plan = Some(plan());
        config.write_key = Some("wk_test".into());
        config.admin_token = Some("at_test".into());
        config.timer_poll = Duration::from_millis(100);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(run(
            config,
            listener,
            async {
                let _ = stopped.await;
            },
            |_| {},
        ));
        let http = reqwest::Client::new();
        let base = format!("http://{address}");
        let mut ready = false;
        for _ in 0..100 {
            if http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "the daemon did not come up on {database}");
        let response = http
            .post(format!("{base}/v1/batch"))
            .basic_auth("wk_test", Some(""))
            .json(&json!({"batch": [
                {"type": "identify", "userId": "ana", "traits": {"email": "ana@example.com"}},
                {"type": "track", "userId": "ana", "event": "Signed Up", "messageId": "s1",
                 "properties": {"form": "footer"}}
            ]}))
            .send()
            .await
            .expect("post");
        assert_eq!(
            response.status().as_u16(),
            200,
            "{:?}",
            response.text().await
        );
        let outbox = state.join("outbox/email");
        let mut files = Vec::new();
        for _ in 0..200 {
            files = std::fs::read_dir(&outbox)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            if files.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        files.sort();
        assert_eq!(
            files,
            vec![
                "welcome_ana_1_again_1.eml".to_string(),
                "welcome_ana_1_hi_1.eml".to_string()
            ],
            "on {database}"
        );
        let first = std::fs::read_to_string(outbox.join("welcome_ana_1_hi_1.eml")).expect("read");
        assert!(first.contains("Subject: Hi from footer"), "{first}");
        let status = http
            .get(format!("{base}/admin/status"))
            .bearer_auth("at_test")
            .send()
            .await
            .expect("status")
            .json::<crate::admin::Status>()
            .await
            .expect("a status");
        assert_eq!(status.active_version, Some(1));
        assert_eq!(status.totals.contacts, 1);
        assert_eq!(status.outbox.sent, 2);
        let _ = stop.send(());
        daemon.await.expect("join").expect("a clean shutdown");
    }
}
