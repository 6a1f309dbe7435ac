//! The Cairn runtime: executes deployed plans.
//!
//! - [`model`]: the records the engine reads and the effects it decides.
//! - [`value`], [`eval`]: values and expression evaluation.
//! - [`time`]: exact durations, calendar months and local time in a contact's zone.
//! - [`engine`]: the state machine of runs, shared by the daemon, `cairn test` and
//!   `cairn simulate`.
//! - [`sim`], [`testkit`]: an in-memory world on a virtual clock, and `test` blocks run
//!   on it.
//! - [`store`]: every SQL statement, for SQLite and PostgreSQL, and the migrations.
//! - [`process`]: a unit of work: load a contact, ask the engine, apply its effects,
//!   in one transaction.
//! - [`ingest`]: the Segment-compatible tracking API.
//! - [`dispatch`]: the outbox worker and its channels (file outbox, webhooks).
//! - [`admin`]: deploys, status, traces, health and metrics over HTTP.
//! - [`server`]: the daemon's wiring: configuration, workers, shutdown.
//! - [`client`]: the admin API from the command line (`cairn deploy`, `cairn status`).
//! - [`bench`]: `cairn bench`, ingestion throughput over loopback.

pub mod admin;
pub mod bench;
pub mod client;
pub mod dispatch;
pub mod engine;
pub mod eval;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod process;
pub mod server;
pub mod sim;
pub mod store;
pub mod testkit;
pub mod time;
pub mod value;
