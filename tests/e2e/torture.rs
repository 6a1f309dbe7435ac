//! Reliability under crashes: a real `cairn serve` is killed with SIGKILL at random
//! (seeded) moments while thousands of contacts move through a journey of sends and
//! waits, then started again on the same store; on PostgreSQL, the daemon's database
//! connections are also terminated under it with `pg_terminate_backend`. Afterwards
//! every due message was queued and written exactly once, no run is lost or stuck, and
//! no timer was skipped or fired early.
//!
//! `CAIRN_TORTURE_KILLS`, `CAIRN_TORTURE_CONTACTS` and `CAIRN_TORTURE_SEED` make a run
//! longer or different (the defaults keep each test under a minute in a debug build);
//! `CAIRN_TORTURE_LOG=1` prints the daemons' logs at the end.

use crate::support::{cairn, project};
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const WRITE_KEY: &str = "wk_torture";
const ADMIN_TOKEN: &str = "at_torture";
const POSTGRES_URL_VAR: &str = "CAIRN_TEST_POSTGRES_URL";

/// Three sends two and three seconds apart, then a day's wait every run is left in.
const JOURNEY: &str = r#"
contact {
  email email?
}

event signed_up "Signed Up" { n number }

template hello email transactional {
  subject "Hello {{ contact.email }}"
  html "<p>Hello</p>"
}

journey drip {
  when signed_up
  audience true

  first: send email hello
  wait 2s
  second: send email hello
  wait 3s
  third: send email hello
  wait 1d
  fourth: send email hello
}
"#;

/// The sends every run makes before its day-long wait, and the waits between them.
const SENDS: [&str; 3] = ["first", "second", "third"];
const GAPS_MS: [i64; 2] = [2_000, 3_000];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small seeded generator (xorshift64*): the same seed kills at the same moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

/// Where the daemon keeps its state.
pub(crate) enum Database {
    Sqlite(PathBuf),
    Postgres {
        /// The fresh database's URL.
        url: String,
        /// The server's URL (the test database), for creating and dropping it.
        admin_url: String,
        name: String,
    },
}

impl Database {
    pub(crate) fn url(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite:{}", path.display()),
            Database::Postgres { url, .. } => url.clone(),
        }
    }

    /// A fresh PostgreSQL database, or `None` when `CAIRN_TEST_POSTGRES_URL` is unset.
    /// Panics when it is set and the server cannot be reached.
    pub(crate) fn postgres(test: &str, runtime: &tokio::runtime::Runtime) -> Option<Database> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("{test}: PostgreSQL not tested ({POSTGRES_URL_VAR} is unset)");
            return None;
        };
        static DATABASES: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "cairn_{test}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        runtime.block_on(async {
            let pool = admin_pool(&admin_url).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&pool)
                .await
                .expect("create the test database");
            pool.close().await;
        });
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url.as_str(), String::new()),
        };
        let (server, _) = base
            .rsplit_once('/')
            .expect("CAIRN_TEST_POSTGRES_URL names a database");
        Some(Database::Postgres {
            url: format!("{server}/{name}{query}"),
            admin_url,
            name,
        })
    }

    pub(crate) fn drop_database(&self, runtime: &tokio::runtime::Runtime) {
        if let Database::Postgres {
            admin_url, name, ..
        } = self
        {
            runtime.block_on(async {
                let pool = admin_pool(admin_url).await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&pool)
                .await
                .expect("drop the test database");
                pool.close().await;
            });
        }
    }
}

async fn admin_pool(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .unwrap_or_else(|e| {
            panic!("{POSTGRES_URL_VAR} is set to `{url}` but PostgreSQL is unreachable: {e}")
        })
}

/// Reads the daemon's store directly, for the checks.
pub(crate) enum Reader {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// One row of a query, as strings and numbers.
pub(crate) type Row = Vec<Json>;

impl Reader {
    pub(crate) async fn open(database: &Database) -> Reader {
        match database {
            Database::Sqlite(path) => Reader::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        sqlx::sqlite::SqliteConnectOptions::new()
                            .filename(path)
                            .read_only(true),
                    )
                    .await
                    .expect("open the SQLite store"),
            ),
            Database::Postgres { url, .. } => Reader::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("open the PostgreSQL store"),
            ),
        }
    }

    /// Runs `sql` (its columns text or integers) and returns its rows.
    pub(crate) async fn rows(&self, sql: &str) -> Vec<Row> {
        use sqlx::{Column, Row as _, TypeInfo};
        fn cell<R: sqlx::Row>(row: &R, i: usize) -> Json
        where
            usize: sqlx::ColumnIndex<R>,
            for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            if let Ok(n) = row.try_get::<Option<i64>, _>(i) {
                return n.map_or(Json::Null, Json::from);
            }
            row.try_get::<Option<String>, _>(i)
                .ok()
                .flatten()
                .map_or(Json::Null, Json::from)
        }
        match self {
            Reader::Sqlite(pool) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
                rows.iter()
                    .map(|r| (0..r.columns().len()).map(|i| cell(r, i)).collect())
                    .collect()
            }
            Reader::Postgres(pool) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
                rows.iter()
                    .map(|r| {
                        (0..r.columns().len())
                            .map(|i| {
                                // PostgreSQL's INTEGER columns are 4 bytes.
                                if r.columns()[i].type_info().name() == "INT4" {
                                    r.try_get::<Option<i32>, _>(i)
                                        .ok()
                                        .flatten()
                                        .map_or(Json::Null, Json::from)
                                } else {
                                    cell(r, i)
                                }
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        self.rows(sql)
            .await
            .first()
            .and_then(|r| r.first())
            .and_then(Json::as_i64)
            .unwrap_or(0)
    }

    pub(crate) async fn close(self) {
        match self {
            Reader::Sqlite(pool) => pool.close().await,
            Reader::Postgres(pool) => pool.close().await,
        }
    }
}

/// The daemon process of the moment.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) url: String,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    pub(crate) fn start(dir: &Path, database: &Database, log: &Arc<Mutex<String>>) -> Daemon {
        let mut child = cairn()
            .arg("serve")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--database", &database.url()])
            .env("NO_COLOR", "1")
            .env("CAIRN_WRITE_KEY", WRITE_KEY)
            .env("CAIRN_ADMIN_TOKEN", ADMIN_TOKEN)
            // A killed PostgreSQL daemon's claims are taken over once they expire.
            .env("CAIRN_LEASE_SECS", "2")
            .env("RUST_LOG", "cairn_runtime=info,warn")
            .env_remove("CAIRN_DATABASE_URL")
            .env_remove("CAIRN_LISTEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cairn serve");
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(" on http://").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = address_tx.send(address.to_string());
                }
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let Ok(address) = address_rx.recv_timeout(Duration::from_secs(120)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cairn serve did not start:\n{}", tail(log));
        };
        Daemon {
            child,
            url: format!("http://{address}"),
            log: log.clone(),
        }
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown code runs.
        self.child.kill().expect("kill the daemon");
        self.child.wait().expect("reap the daemon");
    }

    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the daemon died ({status}):\n{}", tail(&self.log));
        }
    }

    pub(crate) fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the daemon exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("the daemon did not stop on SIGTERM:\n{}", tail(&self.log));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(log: &Arc<Mutex<String>>) -> String {
    let text = log.lock().map(|l| l.clone()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Sends `contacts` contacts (an identify with an email and a `Signed Up` each) in
/// batches to whichever daemon is up, each batch again until one answers 200: what a
/// Segment library does. Returns when every batch was accepted.
fn feed(url: Arc<Mutex<Option<String>>>, contacts: u64, stop: Arc<AtomicBool>) -> u64 {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client");
    let per_batch = 50;
    let mut retries = 0;
    let mut next = 0;
    while next < contacts {
        let end = (next + per_batch).min(contacts);
        let mut batch = Vec::new();
        for n in next..end {
            let user = format!("c{n:06}");
            batch.push(
                json!({"type": "identify", "userId": user, "messageId": format!("id-{n}"),
                "traits": {"email": format!("{user}@example.com")}}),
            );
            batch.push(
                json!({"type": "track", "userId": user, "messageId": format!("su-{n}"),
                "event": "Signed Up", "properties": {"n": n}}),
            );
        }
        let body = serde_json::to_vec(&json!({ "batch": batch })).expect("JSON");
        loop {
            assert!(!stop.load(Ordering::Relaxed), "the test gave up");
            let current = url.lock().ok().and_then(|u| u.clone());
            let Some(base) = current else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let answer = http
                .post(format!("{base}/v1/batch"))
                .basic_auth(WRITE_KEY, Some(""))
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send();
            match answer {
                Ok(response) if response.status().as_u16() == 200 => break,
                Ok(response)
                    if response.status().is_client_error() && response.status().as_u16() != 429 =>
                {
                    panic!(
                        "a batch was refused: {} {}",
                        response.status(),
                        response.text().unwrap_or_default()
                    )
                }
                // Killed mid-request, restarting, busy, or a transient store error.
                _ => {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
        }
        next = end;
        std::thread::sleep(Duration::from_millis(120));
    }
    retries
}

/// What disturbs the daemon while it works.
#[derive(Clone, Copy)]
enum Chaos {
    /// SIGKILL the daemon this many times at random moments, starting it again after.
    Kills(u64),
    /// Terminate its PostgreSQL connections every so often; it must not die.
    TerminateBackends,
}

fn torture(test: &str, database: Database, runtime: &tokio::runtime::Runtime, chaos: Chaos) {
    let dir = project(&[
        (
            "cairn.toml",
            b"[project]\nname = \"torture\"\ncurrency = \"EUR\"\n" as &[u8],
        ),
        ("journeys.cairn", JOURNEY.as_bytes()),
    ]);
    // PostgreSQL in a debug build is slower: fewer contacts keep its tests short.
    let default_contacts = match database {
        Database::Sqlite(_) => 2_000,
        Database::Postgres { .. } => 1_000,
    };
    let contacts = env_number("CAIRN_TORTURE_CONTACTS", default_contacts);
    let seed = env_number("CAIRN_TORTURE_SEED", 0x5eed_cafe);
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    eprintln!("{test}: {contacts} contacts, seed {seed}");

    let log = Arc::new(Mutex::new(String::new()));
    let url = Arc::new(Mutex::new(None::<String>));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || feed(url, contacts, stop))
    };
    let set_url = |value: Option<String>| {
        if let Ok(mut u) = url.lock() {
            *u = value;
        }
    };

    let mut kills = 0;
    let mut terminated = 0;
    let daemon = match chaos {
        Chaos::Kills(times) => {
            for _ in 0..times {
                let daemon = Daemon::start(dir.path(), &database, &log);
                set_url(Some(daemon.url.clone()));
                std::thread::sleep(Duration::from_millis(rng.between(150, 1_500)));
                set_url(None);
                daemon.kill();
                kills += 1;
            }
            let daemon = Daemon::start(dir.path(), &database, &log);
            set_url(Some(daemon.url.clone()));
            daemon
        }
        Chaos::TerminateBackends => {
            let mut daemon = Daemon::start(dir.path(), &database, &log);
            set_url(Some(daemon.url.clone()));
            let Database::Postgres {
                admin_url, name, ..
            } = &database
            else {
                unreachable!("only PostgreSQL has backends to terminate")
            };
            runtime.block_on(async {
                let pool = admin_pool(admin_url).await;
                while !feeder.is_finished() {
                    tokio::time::sleep(Duration::from_millis(rng.between(200, 1_200))).await;
                    let n = sqlx::query(
                        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE datname = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(name)
                    .fetch_one(&pool)
                    .await
                    .map(|row| sqlx::Row::get::<i64, _>(&row, 0))
                    .expect("terminate the daemon's connections");
                    terminated += n;
                    daemon.assert_alive();
                }
                pool.close().await;
            });
            daemon
        }
    };
    let retries = feeder.join().expect("the feeder finished");

    // Every run reaches its day-long wait, its three messages sent.
    let reader = runtime.block_on(Reader::open(&database));
    let deadline = Instant::now() + Duration::from_secs(90);
    let expected = i64::try_from(contacts).expect("a count") * 3;
    loop {
        let (waiting, sent) = runtime.block_on(async {
            (
                reader
                    .count("SELECT COUNT(*) FROM runs WHERE state = 'waiting' AND step IS NOT NULL AND until_at > updated_at + 3600000")
                    .await,
                reader
                    .count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'")
                    .await,
            )
        });
        if waiting == i64::try_from(contacts).expect("a count") && sent >= expected {
            break;
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            panic!(
                "after the crashes, {waiting} of {contacts} runs reached the day-long wait and \
                 {sent} of {expected} messages were sent:\n{}",
                tail(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.terminate();
    if std::env::var_os("CAIRN_TORTURE_LOG").is_some() {
        eprintln!("{}", log.lock().map(|l| l.clone()).unwrap_or_default());
    }
    let report = runtime.block_on(check(&reader, contacts, &dir.path().join(".cairn/outbox")));
    runtime.block_on(reader.close());
    eprintln!(
        "{test}: {kills} kills, {terminated} connections terminated, {retries} batches sent \
         again; {report} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    database.drop_database(runtime);
}

/// The invariants: returns a line about what was checked.
async fn check(reader: &Reader, contacts: u64, outbox: &Path) -> String {
    let contacts = usize::try_from(contacts).expect("a count");
    // One contact per user, one run per contact, each waiting for its day.
    let people = reader
        .count("SELECT COUNT(*) FROM contacts WHERE contact_id LIKE 'c%'")
        .await;
    assert_eq!(people, contacts as i64, "contacts stored");
    let runs = reader
        .rows("SELECT run_id, contact_id, state, until_at, updated_at FROM runs")
        .await;
    assert_eq!(runs.len(), contacts, "one run per contact: {runs:?}");
    let mut run_of: HashMap<String, String> = HashMap::new();
    for run in &runs {
        let id = run[0].as_str().expect("run id").to_string();
        let contact = run[1].as_str().expect("contact").to_string();
        assert_eq!(run[2], "waiting", "run {id} of {contact} is {}", run[2]);
        assert!(
            run_of.insert(contact.clone(), id).is_none(),
            "{contact} has two runs"
        );
    }
    // Each waiting run has exactly one timer, a day away: none lost, none doubled.
    let timers = reader
        .rows("SELECT run_id, due_at FROM timers WHERE kind = 'run'")
        .await;
    let mut timer_of: HashMap<String, i64> = HashMap::new();
    for timer in &timers {
        let run = timer[0].as_str().expect("run id").to_string();
        let due = timer[1].as_i64().expect("due_at");
        assert!(
            timer_of.insert(run.clone(), due).is_none(),
            "run {run} has two timers"
        );
    }
    assert_eq!(timer_of.len(), contacts, "one timer per waiting run");
    for run in &runs {
        let id = run[0].as_str().expect("run id");
        let due = timer_of
            .get(id)
            .copied()
            .unwrap_or_else(|| panic!("run {id} has no timer"));
        assert_eq!(
            Some(due),
            run[3].as_i64(),
            "run {id}'s timer is its wait's end"
        );
    }
    // Exactly the three messages of each run in the outbox, all sent.
    let messages = reader
        .rows("SELECT run_id, step, visit, state, contact_id FROM outbox")
        .await;
    assert_eq!(messages.len(), contacts * SENDS.len(), "messages queued");
    let mut keys = HashSet::new();
    let mut steps_of: HashMap<String, Vec<String>> = HashMap::new();
    for m in &messages {
        let run = m[0].as_str().expect("run").to_string();
        let step = m[1].as_str().expect("step").to_string();
        assert_eq!(m[3], "sent", "message {run}/{step}");
        assert!(keys.insert((run.clone(), step.clone(), m[2].clone().to_string())));
        steps_of.entry(run).or_default().push(step);
    }
    for (run, mut steps) in steps_of {
        steps.sort();
        let mut want: Vec<String> = SENDS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(steps, want, "the messages of run {run}");
    }
    // One file per message in the file outbox, none twice, nothing half-written left.
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(outbox.join("email")).expect("the email outbox") {
        let name = entry
            .expect("an entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".eml") {
            files.insert(name, ());
        }
    }
    assert_eq!(files.len(), contacts * SENDS.len(), "message files written");
    for m in &messages {
        // The file is named by the idempotency key, `run/step/visit`, made safe.
        let key = format!(
            "{}/{}/{}",
            m[0].as_str().expect("run"),
            m[1].as_str().expect("step"),
            m[2]
        );
        let name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '@' | '+') {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            + ".eml";
        assert!(files.contains_key(&name), "no file {name}");
    }
    // Timers fired, none early: each send's outcome at least its wait after the one
    // before.
    let sends = reader
        .rows("SELECT run_id, step, at FROM outcomes WHERE kind = 'send' ORDER BY id")
        .await;
    let mut at_of: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for s in &sends {
        at_of
            .entry((
                s[0].as_str().expect("run").to_string(),
                s[1].as_str().expect("step").to_string(),
            ))
            .or_default()
            .push(s[2].as_i64().expect("at"));
    }
    let mut late = Vec::new();
    for id in run_of.values() {
        let at: Vec<i64> = SENDS
            .iter()
            .map(|step| {
                let times = at_of
                    .get(&(id.clone(), step.to_string()))
                    .unwrap_or_else(|| panic!("run {id} has no `{step}` send outcome"));
                assert_eq!(
                    times.len(),
                    1,
                    "run {id} sent `{step}` {} times",
                    times.len()
                );
                times[0]
            })
            .collect();
        for (i, gap) in GAPS_MS.iter().enumerate() {
            let waited = at[i + 1] - at[i];
            assert!(
                waited >= *gap,
                "run {id}: `{}` {waited} ms after `{}`, before its {gap} ms wait ended",
                SENDS[i + 1],
                SENDS[i]
            );
            late.push(waited - gap);
        }
    }
    late.sort_unstable();
    let p99 = late[(late.len() * 99 / 100).min(late.len() - 1)];
    format!(
        "{} runs, {} messages exactly once, timer lateness p99 {:.1}s max {:.1}s",
        contacts,
        messages.len(),
        p99 as f64 / 1000.0,
        late.last().copied().unwrap_or(0) as f64 / 1000.0
    )
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn sqlite_daemon_survives_sigkill_at_random_moments() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = Database::Sqlite(dir.path().join("cairn.db"));
    let kills = env_number("CAIRN_TORTURE_KILLS", 10);
    torture("sqlite_sigkill", database, &runtime, Chaos::Kills(kills));
}

#[test]
fn postgres_daemon_survives_sigkill_at_random_moments() {
    let runtime = runtime();
    let Some(database) = Database::postgres("pg_sigkill", &runtime) else {
        return;
    };
    let kills = env_number("CAIRN_TORTURE_KILLS", 10);
    torture("pg_sigkill", database, &runtime, Chaos::Kills(kills));
}

#[test]
fn postgres_daemon_survives_its_connections_being_terminated() {
    let runtime = runtime();
    let Some(database) = Database::postgres("pg_terminate", &runtime) else {
        return;
    };
    torture("pg_terminate", database, &runtime, Chaos::TerminateBackends);
}

#[test]
fn a_second_daemon_on_the_same_sqlite_file_is_refused() {
    let dir = project(&[
        (
            "cairn.toml",
            b"[project]\nname = \"torture\"\ncurrency = \"EUR\"\n" as &[u8],
        ),
        ("journeys.cairn", JOURNEY.as_bytes()),
    ]);
    let state = tempfile::tempdir().expect("a temporary directory");
    let database = Database::Sqlite(state.path().join("cairn.db"));
    let log = Arc::new(Mutex::new(String::new()));
    let first = Daemon::start(dir.path(), &database, &log);
    let second = cairn()
        .arg("serve")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--database", &database.url()])
        .env("NO_COLOR", "1")
        .env("CAIRN_WRITE_KEY", WRITE_KEY)
        .env("CAIRN_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run a second cairn serve");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another `cairn serve` is running on"),
        "{stderr}"
    );
    first.terminate();
}
