//! The Cairn runtime: executes deployed plans.
//!
//! - [`model`]: the records the engine reads and the effects it decides.
//! - [`value`], [`eval`]: values and expression evaluation.
//! - [`time`]: exact durations, calendar months and local time in a contact's zone.
//! - [`engine`]: the state machine of runs, shared by the daemon, `cairn test` and
//!   `cairn simulate`.
//! - [`sim`], [`testkit`]: an in-memory world on a virtual clock, and `test` blocks run
//!   on it.
//! - [`simulate`]: `cairn simulate`, recorded or synthetic traffic replayed on that
//!   world, counted per journey and step.
//! - [`store`]: every SQL statement, for SQLite and PostgreSQL, and the migrations.
//! - [`process`]: a unit of work: load a contact, ask the engine, apply its effects,
//!   in one transaction.
//! - [`ingest`]: the Segment-compatible tracking API.
//! - [`links`]: signed links in messages (unsubscribe, preferences, open pixel,
//!   tracked clicks, double opt-in confirmation).
//! - [`respect`]: unsubscribe, preferences, double opt-in, open and click tracking,
//!   bounce and complaint webhooks, and the suppression check before dispatch.
//! - [`dispatch`]: the outbox worker (file outbox, webhooks) and [`channels`]: SMTP
//!   email, SMS and push providers, their delivery status callbacks.
//! - [`inflight`]: what a deploy does to runs in flight: move them by step ID, migrate,
//!   drain, or refuse a plan that strands them.
//! - [`admin`]: deploys, status, traces, health and metrics over HTTP.
//! - [`server`]: the daemon's wiring: configuration, workers, shutdown.
//! - [`client`]: the admin API from the command line (`cairn deploy`, `cairn status`).
//! - [`stats`]: `cairn stats`, each journey's funnel and the contacts' activity.
//! - [`trace`]: `cairn trace`, a contact's runs and why it is not in the other journeys.
//! - [`bench`]: `cairn bench`, ingestion throughput over loopback.
//! - [`preview`]: `cairn preview`, a template rendered for sample data, and test sends.

pub mod admin;
pub mod bench;
pub mod channels;
pub mod client;
pub mod dispatch;
pub mod engine;
pub mod eval;
pub mod inflight;
pub mod ingest;
pub mod links;
pub mod metrics;
pub mod model;
pub mod preview;
pub mod process;
pub mod respect;
pub mod retention;
pub mod server;
pub mod sim;
pub mod simulate;
pub mod stats;
pub mod store;
#[cfg(test)]
mod test_plans;
pub mod testkit;
pub mod time;
pub mod trace;
pub mod value;
