//! The command-line surface: every command, flag and format, in one place.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Journey-as-code for marketing automation",
    long_about = "Journey-as-code for marketing automation.\n\n\
        Write contacts, events, segments, templates and journeys in `.cairn` files, \
        check them, test them and run them.",
    after_help = "Exit codes: 0 success (warnings allowed), 1 errors in the input or failed tests, \
        2 usage or environment errors."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check projects for errors and warnings
    Check(CheckArgs),
    /// Format `.cairn` files canonically, keeping comments
    Fmt(FmtArgs),
    /// Run the `test` blocks of projects on a virtual clock
    Test(TestArgs),
    /// Draw a journey as a flow chart (Mermaid, Graphviz DOT or SVG)
    Graph(GraphArgs),
    /// Replay recorded or synthetic events through a project's plan on a virtual clock
    Simulate(SimulateArgs),
    /// Explain an error or warning code, such as `cairn explain E0304`
    Explain(ExplainArgs),
    /// Compile a project to the plan JSON the runtime executes
    Build(BuildArgs),
    /// Run the language server over standard input and output, for editors
    Lsp,
    /// Run the daemon for a project: ingest events, run journeys, send messages
    Serve(ServeArgs),
    /// Build a project and send its plan to a daemon as a new version
    Deploy(DeployArgs),
    /// Show a daemon's plan versions, journeys and the runs at each step
    Status(StatusArgs),
    /// Compare the project with a git revision: journeys, steps, templates, schema, and
    /// with `--server` the contacts in flight it affects
    Diff(DiffArgs),
    /// Import contacts with their consents, or export or erase everything a daemon holds about one
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Show each journey's funnel on a daemon: entered, sent, delivered, opened,
    /// clicked, converted, step by step, as a chart
    Stats(StatsArgs),
    /// Pause a journey on a daemon: an emergency stop that holds its runs where they are
    Pause(JourneyArgs),
    /// Resume a paused journey: its runs continue where they were
    Resume(JourneyArgs),
    /// Show what happened to a contact on a daemon, run by run, and why it is not in
    /// the other journeys
    Trace(TraceArgs),
    /// Render a template with sample data as the daemon would send it, or send it to
    /// an address as a test through a running daemon
    Preview(PreviewArgs),
    /// Measure a daemon's ingestion throughput over loopback
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The template
    pub template: String,
    /// The project directory or `.cairn` file [default: .]
    pub project: Option<PathBuf>,
    /// The contact: a JSON object of traits (and optionally its `id`) [default:
    /// generated from the contact schema]
    #[arg(long, value_name = "FILE.json", conflicts_with = "traits")]
    pub contact: Option<PathBuf>,
    /// A trait of the contact, `NAME=VALUE` (repeatable), instead of `--contact`
    #[arg(long = "trait", value_name = "NAME=VALUE")]
    pub traits: Vec<String>,
    /// The payload of an event the template reads, `BINDING=FILE.json` (repeatable;
    /// the binding is the `as` name in the journey, such as `cart`) [default:
    /// generated from the event's schema]
    #[arg(long = "event", value_name = "BINDING=FILE.json")]
    pub events: Vec<String>,
    /// How to print the message: text for people, the HTML part alone (for a browser),
    /// or JSON
    #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
    pub format: PreviewFormat,
    /// Write the output to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Send the template, rendered by the running daemon with its active plan, to this
    /// address as a test message
    #[arg(long, value_name = "ADDRESS")]
    pub send_to: Option<String>,
    /// The daemon, with `--send-to` [env: CAIRN_SERVER] [default: the project's
    /// `[serve] listen`, else 127.0.0.1:8080]
    #[arg(long, value_name = "URL", requires = "send_to")]
    pub server: Option<String>,
    /// The daemon's admin token, with `--send-to` [env: CAIRN_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN", requires = "send_to")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreviewFormat {
    /// Headers, the text part, the links and the HTML, for people
    Text,
    /// The full HTML part, to open in a browser
    Html,
    /// One JSON document: the rendered parts, the links, the sample's origin
    Json,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The contact's id (Segment's `userId`)
    pub contact: String,
    /// Only this journey's runs and reasons
    #[arg(long, value_name = "JOURNEY")]
    pub journey: Option<String>,
    /// Only what happened from this time on (ISO 8601 date or instant)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// How to print the trace
    #[arg(long, value_enum, default_value_t = TraceFormat::Human)]
    pub format: TraceFormat,
    /// Also draw the timeline as an SVG picture in this file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    /// A timeline per run and the reasons, for people
    Human,
    /// The admin API's JSON
    Json,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The project whose plan the daemon runs and whose events are sent [default: .]
    pub project: Option<PathBuf>,
    /// Events to send in all
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events per `/v1/batch` request
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Requests in flight at once
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Distinct contacts the events belong to
    #[arg(long, default_value_t = 10_000)]
    pub contacts: usize,
    /// The in-process daemon's store [default: a temporary SQLite file]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Drive a running daemon instead of starting one
    #[arg(long, value_name = "URL", requires = "write_key")]
    pub server: Option<String>,
    /// The running daemon's write key [env: CAIRN_WRITE_KEY]
    #[arg(long, value_name = "KEY")]
    pub write_key: Option<String>,
    /// Engine part: journeys started, each moved by two timers (0 skips the engine part)
    #[arg(long, default_value_t = 100_000)]
    pub runs: usize,
    /// Engine part: journeys started per second (each makes three transitions)
    #[arg(long, default_value_t = 7_000)]
    pub rate: usize,
    /// Memory part: 30-day timers scheduled while resident memory is measured (0 skips it)
    #[arg(long, default_value_t = 1_000_000)]
    pub timers: usize,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The project directory [default: .]
    pub project: Option<PathBuf>,
    /// The address to listen on [env: CAIRN_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The store: `sqlite:PATH` or `postgres://...` [env: CAIRN_DATABASE_URL]
    /// [default: sqlite in the project's `.cairn/`]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// The address contacts reach the daemon at, for links in messages
    /// [env: CAIRN_PUBLIC_URL]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Send email through this SMTP server [env: CAIRN_SMTP_HOST] [default: the
    /// `[email]` table's, else the file outbox]
    #[arg(long, value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// The SMTP server's port [env: CAIRN_SMTP_PORT] [default: 587, 465 with `tls`, 25
    /// with `none`]
    #[arg(long, value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// `starttls`, `tls` (implicit) or `none` [env: CAIRN_SMTP_TLS] [default: starttls]
    #[arg(long, value_name = "MODE")]
    pub smtp_tls: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The project directory, or a plan JSON file built by `cairn build` [default: .]
    pub path: Option<PathBuf>,
    /// The daemon [env: CAIRN_SERVER] [default: the project's `[serve] listen`, else
    /// 127.0.0.1:8080]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The daemon's admin token [env: CAIRN_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Re-activate the version before the active one instead of deploying
    #[arg(long)]
    pub rollback: bool,
    /// Deploy even when contacts in flight wait at steps the plan removes without a
    /// `migrate` or `drain`: they stay on their version
    #[arg(long)]
    pub strand: bool,
    /// Deploy from a work tree with uncommitted changes (the plan records `COMMIT-dirty`)
    #[arg(long)]
    pub allow_dirty: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The git revision to compare with [default: the merge base of HEAD with `main`,
    /// else with `origin/main`]
    #[arg(value_name = "REV")]
    pub revision: Option<String>,
    /// The project directory [default: .]; a lone argument that is a path and not a
    /// revision is the path
    pub path: Option<PathBuf>,
    /// How to print the changes: text, Markdown for a pull-request comment, or JSON
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    pub format: DiffFormat,
    /// A daemon whose runs in flight the change affects
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The daemon's admin token [env: CAIRN_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Write the diff to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Human,
    Markdown,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Print everything the daemon holds about a contact as JSON: traits, aliases,
    /// consents, tags, scores, segments, events, runs, outcomes, messages, suppressions
    Export(ContactArgs),
    /// Erase a contact's personal data; the anonymous counts of `cairn stats` stay
    Erase(EraseArgs),
    /// Import contacts with their traits and consents from a JSON lines or CSV file;
    /// every row is checked first, and nothing is imported when any row is bad
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: one contact per line (JSON lines) or per row (CSV with a header)
    pub file: PathBuf,
    /// The file's format [default: `csv` for a `.csv` file, else `jsonl`]
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// Only check the file against the deployed plan and count what would change
    #[arg(long)]
    pub dry_run: bool,
    /// Import the good rows of a file that has bad ones (each bad row is reported)
    #[arg(long)]
    pub skip_invalid: bool,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// One JSON object per line: `{"id", "traits", "consents"}`
    Jsonl,
    /// A header row: `id`, trait names, `consent:NAME`, `consent:NAME:at`,
    /// `consent:NAME:source`
    Csv,
}

/// Where the admin commands reach the running daemon.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The daemon [env: CAIRN_SERVER] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The daemon's admin token [env: CAIRN_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ContactArgs {
    /// The contact's id (Segment's `userId`)
    pub id: String,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Write the export to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The contact's id (Segment's `userId`)
    pub id: String,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Erase without asking (needed when standard input is not a terminal)
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct JourneyArgs {
    /// The journey's name
    pub journey: String,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The journey [default: every journey]
    pub journey: Option<String>,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// How to print the statistics
    #[arg(long, value_enum, default_value_t = StatsFormat::Human)]
    pub format: StatsFormat,
    /// Also draw each journey's funnel as an SVG picture in this file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Write the report to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// Tables and bar charts, for people
    Human,
    /// The admin API's JSON
    Json,
    /// Markdown tables, for a pull request or a report
    Markdown,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// How to print the status
    #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// Tables, for people
    Human,
    /// The admin API's JSON
    Json,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project directory or `.cairn` file [default: .]
    pub path: Option<PathBuf>,
    /// Write the plan to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The plan this one replaces (a `cairn build` output): `migrate` is checked
    /// against its steps
    #[arg(long, value_name = "PLAN.json")]
    pub previous: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files, project directories, or folders holding projects [default: .]
    pub paths: Vec<PathBuf>,
    /// How to print the findings
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Treat warnings as errors (exit 1)
    #[arg(long)]
    pub deny_warnings: bool,
    /// Write the report to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Files, project directories, or folders holding projects [default: .]
    pub paths: Vec<PathBuf>,
    /// Change nothing; list the files that are not formatted and exit 1 if any
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Files, project directories, or folders holding projects [default: .]
    pub paths: Vec<PathBuf>,
    /// Run only the tests whose name contains this text
    #[arg(long)]
    pub filter: Option<String>,
    /// How to report: human text, JUnit XML for CI, or the outcome timeline as JSON lines
    #[arg(long, value_enum, default_value_t = TestFormat::Human)]
    pub format: TestFormat,
    /// Write the report to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    Human,
    Junit,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The journey to draw
    pub journey: String,
    /// The project directory or `.cairn` file [default: .]
    pub path: Option<PathBuf>,
    /// Mermaid renders in pull requests and Markdown; DOT feeds Graphviz; SVG is a
    /// picture
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
    /// Write the chart to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Add the runs waiting at each step now, read from this daemon's status
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The daemon's admin token, with `--server` [env: CAIRN_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN", requires = "server")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
    Svg,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["events", "synthetic", "against_server"])))]
pub struct SimulateArgs {
    /// The project directory or `.cairn` file whose plan replays the events [default: .]
    pub project: Option<PathBuf>,
    /// Segment messages, one JSON object per line, each with a `type` and a
    /// `timestamp` (`-` reads standard input)
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Replay the events a running daemon stored between `--from` and `--to` against
    /// this project's (changed) plan
    #[arg(long, value_name = "URL", requires_all = ["from", "to"])]
    pub against_server: Option<String>,
    /// The daemon's admin token, with `--against-server` [env: CAIRN_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN", requires = "against_server")]
    pub token: Option<String>,
    /// Generate this many synthetic events of the plan's own event types instead
    #[arg(long, value_name = "N")]
    pub synthetic: Option<usize>,
    /// Distinct contacts of the synthetic events [default: one per 10 events]
    #[arg(long, value_name = "N", requires = "synthetic")]
    pub contacts: Option<usize>,
    /// Write the synthetic events to this file as JSON lines, for `--events`
    #[arg(long, value_name = "FILE", requires = "synthetic")]
    pub save_events: Option<PathBuf>,
    /// Start of the window (ISO 8601); earlier events are not replayed [default: the
    /// first event]
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the window (ISO 8601): later events are not replayed, and timers due
    /// before it fire [default: 30 days after the last event]
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Count and report invalid lines instead of stopping at them
    #[arg(long)]
    pub skip_invalid: bool,
    /// How to print the counts
    #[arg(long, value_enum, default_value_t = SimulateFormat::Human)]
    pub format: SimulateFormat,
    /// Write the counts to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimulateFormat {
    /// Tables, for people
    Human,
    /// One JSON document
    Json,
    /// Markdown tables, for a pull request comment
    Markdown,
    /// Every outcome (enter, send, skip, goal, exit...) as one JSON object per line
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The code (`E0304`, `W0001`); without one, list every code
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Source snippets with labels and help, for people
    Human,
    /// One JSON document
    Json,
    /// One JSON object per line
    Jsonl,
    /// GitHub Actions workflow commands (annotations on the pull request)
    Github,
    /// SARIF 2.1.0, for code scanning tools
    Sarif,
}

/// The paths a command works on, `.` when none are given.
pub fn paths_or_current(paths: &[PathBuf]) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths.to_vec()
    }
}
