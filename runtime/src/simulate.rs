//! `cairn simulate`: replays Segment messages (recorded, exported from a daemon, or
//! synthetic) through a plan on a virtual clock, with the engine and the in-memory
//! [`World`] that `cairn test` uses, and counts what would have happened: messages per
//! journey and step, entries, goals, exits, skips, and the runs still waiting at the end.
//!
//! Messages are read and checked exactly as the tracking API reads them
//! ([`IngestSchema::read`]); a message must carry its `timestamp`, which sets the
//! virtual clock. Messages are replayed in timestamp order (ties keep the file's order),
//! and every timer due before the end of the window fires.

use crate::ingest::schema::parse_instant;
use crate::ingest::segment::{IngestSchema, Input, InputKind};
use crate::model::{Contact, Millis, Outcome, RunState};
use crate::sim::World;
use crate::store::contacts::merge_traits;
use cairn_plan::Plan;
use cairn_plan::journey::{Journey, StepKind};
use cairn_plan::schema::{Field, Type};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// How long the clock runs past the last message when no end is given.
pub const DEFAULT_TAIL_MS: Millis = 30 * 86_400_000;

/// A line that is not a message the plan accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidLine {
    /// 1-based, as editors count.
    pub line: usize,
    pub errors: Vec<String>,
}

impl std::fmt::Display for InvalidLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.errors.join("; "))
    }
}

/// Messages read from JSON lines, checked against the plan.
#[derive(Debug, Default)]
pub struct Messages {
    /// Each accepted message with its line number.
    pub inputs: Vec<(usize, Input)>,
    pub invalid: Vec<InvalidLine>,
}

/// Reads one JSON object per line (blank lines are skipped). Each must be a Segment
/// message with a `type` and a `timestamp`; the tracking API's checks apply. Long
/// inputs are read on several threads.
pub fn read_messages(schema: &IngestSchema, text: &str) -> Messages {
    let lines: Vec<&str> = text.lines().collect();
    let threads = threads_for(lines.len());
    let chunk = lines.len().div_ceil(threads).max(1);
    let parts: Vec<Messages> = std::thread::scope(|scope| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| scope.spawn(move || read_lines(schema, n * chunk, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut messages = Messages::default();
    for part in parts {
        messages.inputs.extend(part.inputs);
        messages.invalid.extend(part.invalid);
    }
    messages
}

/// `lines`, the first of which is line `offset + 1`.
fn read_lines(schema: &IngestSchema, offset: usize, lines: &[&str]) -> Messages {
    let mut messages = Messages::default();
    for (index, line) in lines.iter().enumerate() {
        let number = offset + index + 1;
        if line.trim().is_empty() {
            continue;
        }
        match read_line(schema, number, line) {
            Ok(input) => messages.inputs.push((number, input)),
            Err(errors) => messages.invalid.push(InvalidLine {
                line: number,
                errors,
            }),
        }
    }
    messages
}

/// Work below this many items is not worth a thread.
const PER_THREAD: usize = 20_000;

fn threads_for(items: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (items / PER_THREAD).clamp(1, cores.min(8))
}

fn read_line(schema: &IngestSchema, number: usize, line: &str) -> Result<Input, Vec<String>> {
    let mut message: Json =
        serde_json::from_str(line).map_err(|e| vec![format!("not JSON: {e}")])?;
    let Some(object) = message.as_object_mut() else {
        return Err(vec!["a message must be a JSON object".into()]);
    };
    if !object.contains_key("type") {
        return Err(vec![
            "a message needs a `type`: `track`, `identify`, `page` or `alias`".into(),
        ]);
    }
    // The message's own time is the replay's clock: no correction for the sender's
    // clock, since no request arrives.
    object.remove("sentAt");
    let stamp = ["timestamp", "originalTimestamp", "receivedAt"]
        .iter()
        .find_map(|key| object.get(*key).map(|v| (*key, v)));
    let at = match stamp {
        Some((key, Json::String(s))) => {
            parse_instant(s)
                .map(|t| t.as_millisecond())
                .ok_or_else(|| {
                    vec![format!(
                        "`{key}` must be an ISO 8601 date and time, not `{s}`"
                    )]
                })?
        }
        Some((key, _)) => return Err(vec![format!("`{key}` must be an ISO 8601 date and time")]),
        None => {
            return Err(vec![
                "a message needs a `timestamp` to be replayed at its time".into(),
            ]);
        }
    };
    // The instant is read: without its stamps the message occurred when it is
    // received, which is `at` (what ingestion would compute from them, read twice).
    if let Some(object) = message.as_object_mut() {
        object.remove("timestamp");
        object.remove("originalTimestamp");
    }
    schema
        .read_owned(number, message, None, None, at)
        .map_err(|rejected| rejected.errors)
}

/// Counts of one step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepReport {
    pub step: String,
    /// What the step does, as `cairn graph` labels it (`send email cart_reminder`).
    pub does: String,
    /// Messages queued for a channel (and webhooks posted).
    pub sent: u64,
    /// Sends skipped, by reason (`no_consent`, `frequency_cap`, ...).
    pub skipped: BTreeMap<String, u64>,
    /// Sends moved later by quiet hours or a cap.
    pub deferred: u64,
    /// Split arms taken.
    pub arms: BTreeMap<String, u64>,
    /// Runs at this step when the window closed.
    pub waiting: u64,
}

/// Counts of one journey.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JourneyReport {
    pub journey: String,
    pub entered: u64,
    pub goals: u64,
    /// Ended runs by reason (`completed`, `goal`, `exit_condition`, `timeout`).
    pub ended: BTreeMap<String, u64>,
    pub in_flight: u64,
    /// Steps in flow order from the entry.
    pub steps: Vec<StepReport>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    /// Messages replayed (inside the window).
    pub messages: u64,
    /// Messages before `from` or at/after `to`, not replayed.
    pub outside_window: u64,
    /// Events about anonymous visitors no contact had claimed (kept, as the daemon
    /// keeps them, but they start nothing).
    pub anonymous: u64,
    pub contacts: u64,
    /// Invalid lines, when they were skipped.
    pub invalid: Vec<InvalidLine>,
    /// Messages sent over all journeys, by channel.
    pub sent_by_channel: BTreeMap<String, u64>,
    pub journeys: Vec<JourneyReport>,
}

impl Report {
    pub fn sent(&self) -> u64 {
        self.sent_by_channel.values().sum()
    }
}

/// A replay in progress: the world, who each id is, and the window.
pub struct Replay<'p> {
    world: World<'p>,
    from: Millis,
    to: Millis,
    /// Anonymous id → the contact it was merged into.
    aliases: HashMap<String, String>,
    /// Events of anonymous visitors not merged yet.
    anonymous_events: HashMap<String, Vec<(String, Arc<Json>, Millis)>>,
    messages: u64,
    outside: u64,
    anonymous: u64,
}

impl<'p> Replay<'p> {
    /// A replay of the window `[from, to)`.
    pub fn new(plan: &'p Plan, from: Millis, to: Millis) -> Self {
        Replay {
            world: World::new(plan, from),
            from,
            to,
            aliases: HashMap::new(),
            anonymous_events: HashMap::new(),
            messages: 0,
            outside: 0,
            anonymous: 0,
        }
    }

    /// Replays one message; messages must come in time order.
    pub fn input(&mut self, input: Input) {
        let at = input.occurred_at;
        if at < self.from || at >= self.to {
            self.outside += 1;
            return;
        }
        self.messages += 1;
        // A replay counts messages and never reads what they say: rendered messages
        // are let go as soon as they are made instead of piling up.
        self.world.outbox.clear();
        self.world.advance_before(at);
        let Input {
            user_id,
            anonymous_id,
            kind,
            ..
        } = input;
        let identified = user_id.is_some();
        let contact = match (user_id, &anonymous_id) {
            (Some(user), _) => Some(user),
            (None, Some(anonymous)) => self.aliases.get(anonymous).cloned(),
            (None, None) => None,
        };
        let Some(contact) = contact else {
            if let (Some(anonymous), InputKind::Track { event, payload }) = (anonymous_id, kind) {
                self.anonymous += 1;
                self.anonymous_events
                    .entry(anonymous)
                    .or_default()
                    .push((event, payload, at));
            }
            return;
        };
        self.ensure_contact(&contact, at);
        let previous = match &kind {
            InputKind::Alias { previous_id } => Some(previous_id.clone()),
            _ => anonymous_id.filter(|_| identified),
        };
        if let Some(previous) = previous.filter(|p| *p != contact) {
            self.merge(&previous, &contact);
        }
        match kind {
            InputKind::Identify { traits, consents } => {
                if let Some(c) = self.world.contacts.get_mut(&contact) {
                    merge_traits(&mut c.traits, &traits);
                    c.time_zone = c
                        .traits
                        .get("timezone")
                        .or_else(|| c.traits.get("time_zone"))
                        .and_then(Json::as_str)
                        .map(str::to_string);
                }
                for (consent, granted) in consents {
                    self.consent(&contact, &consent, granted, "identify");
                }
                // Trait changes can move segment membership and schedule anniversaries.
                self.world.ingest(&contact, "$identify", json!({}));
            }
            InputKind::Track { event, payload } => {
                self.consents_of_event(&contact, &event, &payload);
                self.world.ingest(&contact, &event, payload);
            }
            InputKind::Alias { .. } | InputKind::Ignored => {}
        }
    }

    /// A contact the daemon would create on first sight, with its `contact_created`.
    fn ensure_contact(&mut self, id: &str, at: Millis) {
        if self.world.contacts.contains_key(id) {
            return;
        }
        self.world.add_contact(Contact {
            id: id.to_string(),
            created_at: at,
            ..Contact::default()
        });
        self.world.ingest(id, "contact_created", json!({}));
    }

    /// Moves an anonymous visitor's events into the contact's history (they start
    /// nothing now, as in the daemon, but segments and conditions read them).
    fn merge(&mut self, anonymous: &str, contact: &str) {
        if self.aliases.contains_key(anonymous) {
            return;
        }
        self.aliases
            .insert(anonymous.to_string(), contact.to_string());
        for (name, payload, at) in self.anonymous_events.remove(anonymous).unwrap_or_default() {
            self.world.record(contact, &name, payload, at);
        }
    }

    fn consents_of_event(&mut self, contact: &str, event: &str, payload: &Json) {
        let plan = self.world.plan();
        match event {
            "consent_granted" => {
                if let Some(consent) = payload.get("consent").and_then(Json::as_str) {
                    let source = payload
                        .get("source")
                        .and_then(Json::as_str)
                        .unwrap_or("track");
                    self.consent(contact, consent, true, source);
                }
            }
            "unsubscribed" => {
                let scope = payload.get("scope").and_then(Json::as_str).unwrap_or("all");
                let via = payload.get("via").and_then(Json::as_str).unwrap_or("track");
                for consent in plan.schema.consents.values() {
                    if scope == "all" || scope == consent.channel.as_str() {
                        self.consent(contact, &consent.name, false, via);
                    }
                }
            }
            _ => {}
        }
    }

    fn consent(&mut self, contact: &str, consent: &str, granted: bool, source: &str) {
        let Some(c) = self.world.contacts.get(contact) else {
            return;
        };
        if c.consents.get(consent) == Some(&granted) {
            return;
        }
        self.world.set_consent(contact, consent, granted);
        self.world.outcomes.push(Outcome {
            at: self.world.now,
            contact_id: contact.to_string(),
            journey: None,
            run_id: None,
            step: None,
            kind: "consent".into(),
            detail: json!({ "consent": consent, "granted": granted, "source": source }),
        });
    }

    /// Fires every timer due before the end of the window and counts what happened;
    /// also returns every outcome, in time order.
    pub fn finish(self, invalid: Vec<InvalidLine>) -> (Report, Vec<Outcome>) {
        self.finish_with(invalid, true)
    }

    /// [`finish`](Self::finish), with the outcomes only when `timeline` asks for them.
    fn finish_with(mut self, invalid: Vec<InvalidLine>, timeline: bool) -> (Report, Vec<Outcome>) {
        self.world.advance_before(self.to);
        let plan = self.world.plan();
        let mut journeys: BTreeMap<&str, JourneyReport> = BTreeMap::new();
        let mut step_index: HashMap<(&str, &str), usize> = HashMap::new();
        for (name, journey) in &plan.journeys {
            let steps: Vec<StepReport> = step_order(journey)
                .into_iter()
                .filter_map(|id| {
                    let step = journey.steps.get(&cairn_plan::StepId(id.to_string()))?;
                    Some((id, step_text(&step.kind)))
                })
                .enumerate()
                .map(|(i, (id, does))| {
                    step_index.insert((name.as_str(), id), i);
                    StepReport {
                        step: id.to_string(),
                        does,
                        ..StepReport::default()
                    }
                })
                .collect();
            journeys.insert(
                name,
                JourneyReport {
                    journey: name.clone(),
                    steps,
                    ..JourneyReport::default()
                },
            );
        }
        let mut sent_by_channel: BTreeMap<String, u64> = BTreeMap::new();
        for o in &self.world.outcomes {
            let Some(journey) = o.journey.as_deref().and_then(|j| journeys.get_mut(j)) else {
                continue;
            };
            let step = o.step.as_deref().and_then(|s| {
                step_index
                    .get(&(journey.journey.as_str(), s))
                    .map(|i| &mut journey.steps[*i])
            });
            let detail = |key: &str| {
                o.detail
                    .get(key)
                    .and_then(Json::as_str)
                    .unwrap_or("?")
                    .to_string()
            };
            match o.kind.as_str() {
                "enter" => journey.entered += 1,
                "goal" => journey.goals += 1,
                "send" | "webhook" => {
                    let channel = if o.kind == "webhook" {
                        "webhook".to_string()
                    } else {
                        detail("channel")
                    };
                    *sent_by_channel.entry(channel).or_default() += 1;
                    if let Some(step) = step {
                        step.sent += 1;
                    }
                }
                "skip" => {
                    if let Some(step) = step {
                        *step.skipped.entry(detail("reason")).or_default() += 1;
                    }
                }
                "defer" => {
                    if let Some(step) = step {
                        step.deferred += 1;
                    }
                }
                "split" => {
                    if let Some(step) = step {
                        *step.arms.entry(detail("arm")).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        for run in self.world.runs.values() {
            let Some(journey) = journeys.get_mut(run.journey.as_str()) else {
                continue;
            };
            match &run.state {
                RunState::Ended { reason, .. } => {
                    *journey
                        .ended
                        .entry(reason.as_str().to_string())
                        .or_default() += 1;
                }
                _ => {
                    journey.in_flight += 1;
                    if let Some(i) = run
                        .step
                        .as_deref()
                        .and_then(|s| step_index.get(&(journey.journey.as_str(), s)))
                    {
                        journey.steps[*i].waiting += 1;
                    }
                }
            }
        }
        let report = Report {
            from: crate::time::timestamp(self.from).to_string(),
            to: crate::time::timestamp(self.to).to_string(),
            messages: self.messages,
            outside_window: self.outside,
            anonymous: self.anonymous,
            contacts: self.world.contacts.len() as u64,
            invalid,
            sent_by_channel,
            journeys: journeys.into_values().collect(),
        };
        let timeline = if timeline {
            let mut outcomes = std::mem::take(&mut self.world.outcomes);
            outcomes.sort_by_key(|o| o.at);
            outcomes
        } else {
            Vec::new()
        };
        self.world.drop_in_background();
        (report, timeline)
    }
}

/// Replays `messages` (in timestamp order, ties in file order) over `[from, to)`;
/// without `from` the window opens at the first message, without `to` it closes
/// [`DEFAULT_TAIL_MS`] after the last. `progress` hears how many messages were
/// replayed, now and then.
///
/// Everything the engine decides concerns one contact, so contacts are replayed in
/// shards on several threads when there are many messages, and the counts added up.
/// An anonymous id goes to the shard of the contact that claims it.
pub fn replay(
    plan: &Plan,
    messages: Messages,
    from: Option<Millis>,
    to: Option<Millis>,
    progress: &(dyn Fn(u64) + Sync),
) -> (Report, Vec<Outcome>) {
    replay_with(plan, messages, from, to, progress, true)
}

/// [`replay`] without the timeline: only the counts, which spares sorting and keeping
/// every outcome.
pub fn replay_report(
    plan: &Plan,
    messages: Messages,
    from: Option<Millis>,
    to: Option<Millis>,
    progress: &(dyn Fn(u64) + Sync),
) -> Report {
    replay_with(plan, messages, from, to, progress, false).0
}

/// [`replay`], with the timeline only when `timeline` asks for it.
fn replay_with(
    plan: &Plan,
    messages: Messages,
    from: Option<Millis>,
    to: Option<Millis>,
    progress: &(dyn Fn(u64) + Sync),
    timeline: bool,
) -> (Report, Vec<Outcome>) {
    let Messages { inputs, invalid } = messages;
    let first = inputs.iter().map(|(_, i)| i.occurred_at).min();
    let last = inputs.iter().map(|(_, i)| i.occurred_at).max();
    let from = from.or(first).unwrap_or(0);
    let to = to
        .or(last.map(|l| l.saturating_add(DEFAULT_TAIL_MS)))
        .unwrap_or(from);

    let shards = threads_for(inputs.len());
    let window = Window { from, to, shards };
    replay_in(plan, inputs, invalid, window, progress, timeline)
}

/// The clock's window of a replay and the shards it runs in.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Millis,
    to: Millis,
    shards: usize,
}

/// [`replay`] of `inputs`, in any order (each shard sorts its own); the timeline only
/// when `timeline` asks for it.
fn replay_in(
    plan: &Plan,
    inputs: Vec<(usize, Input)>,
    invalid: Vec<InvalidLine>,
    window: Window,
    progress: &(dyn Fn(u64) + Sync),
    timeline: bool,
) -> (Report, Vec<Outcome>) {
    let Window { from, to, shards } = window;
    let shards = shards.max(1);
    let parts = partition(inputs, from, to, shards);
    let results: Vec<(Report, Vec<Outcome>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    let mut part = part;
                    // Time order, ties in file order: line numbers are unique, so this
                    // is the order a stable sort gives.
                    part.sort_unstable_by_key(|(line, input)| (input.occurred_at, *line));
                    let count = part.len() as u64;
                    let mut replay = Replay::new(plan, from, to);
                    for (n, (_, input)) in part.into_iter().enumerate() {
                        replay.input(input);
                        if n % 4096 == 4095 {
                            progress(4096);
                        }
                    }
                    progress(count % 4096);
                    replay.finish_with(Vec::new(), timeline)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut results = results.into_iter();
    let (mut report, mut timeline) = results.next().unwrap_or_default();
    for (other, more) in results {
        report.add(other);
        timeline.extend(more);
    }
    if !timeline.is_empty() {
        timeline.sort_by_key(|o| o.at);
    }
    report.invalid = invalid;
    (report, timeline)
}

/// Splits `inputs` into `shards` parts by contact, keeping their order: an anonymous
/// id goes with the contact that first claims it inside the window (in time order,
/// ties in file order).
fn partition(
    inputs: Vec<(usize, Input)>,
    from: Millis,
    to: Millis,
    shards: usize,
) -> Vec<Vec<(usize, Input)>> {
    if shards <= 1 {
        return vec![inputs];
    }
    let places: Vec<usize> = {
        let mut candidates: Vec<(Millis, usize, &str, &str)> = inputs
            .iter()
            .filter(|(_, i)| i.occurred_at >= from && i.occurred_at < to)
            .filter_map(|(line, input)| {
                let previous = match &input.kind {
                    InputKind::Alias { previous_id } => Some(previous_id),
                    _ => input.anonymous_id.as_ref(),
                };
                let user = input.user_id.as_ref()?;
                Some((input.occurred_at, *line, previous?.as_str(), user.as_str()))
            })
            .collect();
        candidates.sort_unstable_by_key(|(at, line, _, _)| (*at, *line));
        let mut claims: HashMap<&str, &str> = HashMap::new();
        for (_, _, previous, user) in candidates {
            claims.entry(previous).or_insert(user);
        }
        inputs
            .iter()
            .map(|(_, input)| {
                let key = match (&input.user_id, &input.anonymous_id) {
                    (Some(user), _) => user.as_str(),
                    (None, Some(anonymous)) => {
                        claims.get(anonymous.as_str()).copied().unwrap_or(anonymous)
                    }
                    (None, None) => "",
                };
                shard_of(key, shards)
            })
            .collect()
    };
    let mut parts: Vec<Vec<(usize, Input)>> = (0..shards)
        .map(|_| Vec::with_capacity(inputs.len() / shards + 1))
        .collect();
    for (input, place) in inputs.into_iter().zip(places) {
        parts[place].push(input);
    }
    parts
}

/// A stable shard for a contact id (FNV-1a, the same on every run and machine).
fn shard_of(key: &str, shards: usize) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % shards.max(1) as u64) as usize
}

impl Report {
    /// Adds the counts of another shard of the same plan and window.
    fn add(&mut self, other: Report) {
        self.messages += other.messages;
        self.outside_window += other.outside_window;
        self.anonymous += other.anonymous;
        self.contacts += other.contacts;
        add_counts(&mut self.sent_by_channel, other.sent_by_channel);
        for (mine, theirs) in self.journeys.iter_mut().zip(other.journeys) {
            mine.entered += theirs.entered;
            mine.goals += theirs.goals;
            mine.in_flight += theirs.in_flight;
            add_counts(&mut mine.ended, theirs.ended);
            for (a, b) in mine.steps.iter_mut().zip(theirs.steps) {
                a.sent += b.sent;
                a.deferred += b.deferred;
                a.waiting += b.waiting;
                add_counts(&mut a.skipped, b.skipped);
                add_counts(&mut a.arms, b.arms);
            }
        }
    }
}

fn add_counts(to: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *to.entry(k).or_default() += v;
    }
}

/// A journey's steps in flow order: breadth first from the entry, then any left over.
pub fn step_order(journey: &Journey) -> Vec<&str> {
    let mut order: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&str> = journey.entry.iter().map(|s| s.0.as_str()).collect();
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        let Some(step) = journey.steps.get(&cairn_plan::StepId(id.to_string())) else {
            continue;
        };
        order.push(id);
        let mut next: Vec<&Option<cairn_plan::StepId>> = vec![&step.next];
        match &step.kind {
            StepKind::WaitFor {
                on_event,
                on_timeout,
                ..
            } => next.extend([on_event, on_timeout]),
            StepKind::Branch { then, else_, .. } => next.extend([then, else_]),
            StepKind::Split { arms } => next.extend(arms.iter().map(|a| &a.next)),
            _ => {}
        }
        queue.extend(next.into_iter().flatten().map(|s| s.0.as_str()));
    }
    for id in journey.steps.keys() {
        if seen.insert(id.0.as_str()) {
            order.push(id.0.as_str());
        }
    }
    order
}

/// What a step does, in a few words (`send email cart_reminder`, `wait 1d`).
pub fn step_text(kind: &StepKind) -> String {
    match kind {
        StepKind::Send {
            channel, template, ..
        } => format!("send {} {template}", channel.as_str()),
        StepKind::SendPreferred { templates, .. } => {
            format!("send preferred {}", templates.join(" / "))
        }
        StepKind::Webhook { url, .. } => format!("post {url}"),
        StepKind::Wait { seconds } => format!("wait {}", human_seconds(*seconds)),
        StepKind::WaitMonths { months } => format!("wait {months} months"),
        StepKind::WaitUntil { from, to } => match to {
            Some(to) => format!("wait until {from}..{to}"),
            None => format!("wait until {from}"),
        },
        StepKind::WaitFor { event, .. } => format!("wait for {event}"),
        StepKind::Branch { .. } => "if".into(),
        StepKind::Split { .. } => "split".into(),
        StepKind::Tag { add, tag } => {
            format!("tag {} {tag}", if *add { "add" } else { "remove" })
        }
        StepKind::Score { score, delta } => format!("score {score} {delta}"),
        StepKind::Set { path, .. } => format!("set {}", path.join(".")),
        StepKind::Retry { target, .. } => format!("retry {}", target.0),
        StepKind::Goal => "goal".into(),
        StepKind::Exit => "exit".into(),
    }
}

pub fn human_seconds(s: u64) -> String {
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Synthetic traffic for a plan, as Segment JSON lines: `contacts` contacts are
/// identified (address fields set, every consent granted), then `events` `track`
/// calls of the plan's own events, spread over a day from `start` and deterministic
/// for a `seed`. For benchmarks and trying a plan on plausible volume.
pub fn synthetic(plan: &Plan, events: usize, contacts: usize, start: Millis, seed: u64) -> String {
    let contacts = contacts.max(1);
    let mut rng = seed | 1;
    let mut next = move || {
        // xorshift64*: reproducible without a dependency.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let declared: Vec<&cairn_plan::schema::Event> =
        plan.schema.events.values().filter(|e| !e.builtin).collect();
    let consents: Vec<&str> = plan.schema.consents.keys().map(String::as_str).collect();
    let mut out = String::with_capacity(events * 200);
    let stamp = |ms: Millis| crate::time::timestamp(ms).to_string();
    for c in 0..contacts {
        let mut traits = Map::new();
        for field in &plan.schema.contact {
            let value = match field.name.as_str() {
                "email" => json!(format!("user{c}@example.com")),
                "phone" => json!(format!("+4850010{:04}", c % 10_000)),
                "push_token" => json!(format!("token-{c}")),
                "first_name" => json!(format!("Contact {c}")),
                _ => continue,
            };
            traits.insert(field.name.clone(), value);
        }
        traits.insert("consents".into(), json!(consents));
        let line = json!({
            "type": "identify", "userId": format!("user-{c}"), "traits": traits,
            "timestamp": stamp(start), "messageId": format!("synthetic-identify-{c}"),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    for n in 0..events {
        let contact = (next() % contacts as u64) as usize;
        let at = start + 1_000 + (next() % 86_400_000) as Millis;
        let line = if declared.is_empty() || next().is_multiple_of(4) {
            json!({
                "type": "page", "userId": format!("user-{contact}"), "timestamp": stamp(at),
                "properties": { "url": format!("https://shop.example/p/{}", next() % 100) },
                "messageId": format!("synthetic-{n}"),
            })
        } else {
            let event = declared[(next() % declared.len() as u64) as usize];
            let properties: Map<String, Json> = event
                .fields
                .iter()
                .filter_map(|f| Some((f.name.clone(), sample(plan, f, &mut next, 0)?)))
                .collect();
            json!({
                "type": "track", "userId": format!("user-{contact}"),
                "event": event.wire_name.clone().unwrap_or_else(|| event.name.clone()),
                "properties": properties, "timestamp": stamp(at),
                "messageId": format!("synthetic-{n}"),
            })
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// A plausible value of a field's type.
fn sample(
    plan: &Plan,
    field: &Field,
    next: &mut impl FnMut() -> u64,
    depth: usize,
) -> Option<Json> {
    sample_type(plan, &field.ty, &field.name, next, depth)
}

pub(crate) fn sample_type(
    plan: &Plan,
    ty: &Type,
    name: &str,
    next: &mut impl FnMut() -> u64,
    depth: usize,
) -> Option<Json> {
    if depth > 4 {
        return None;
    }
    let n = next() % 1_000;
    Some(match ty {
        Type::Scalar { name: scalar } => match scalar.as_str() {
            "string" => json!(format!("{name}-{n}")),
            "number" => json!(n),
            "bool" => json!(n.is_multiple_of(2)),
            "money" => json!(format!(
                "{}.{:02} {}",
                n,
                n % 100,
                plan.default_currency.as_deref().unwrap_or("EUR")
            )),
            "date" => json!("2026-03-01"),
            "datetime" => json!("2026-03-01T10:00:00Z"),
            "time" => json!("09:00"),
            "email" => json!(format!("someone{n}@example.com")),
            "phone" => json!(format!("+48500{n:06}")),
            "url" => json!(format!("https://shop.example/{name}/{n}")),
            "timezone" => json!("Europe/Warsaw"),
            _ => return None,
        },
        Type::Enum { values } => json!(values.get(n as usize % values.len().max(1))?),
        Type::Record { name: record } => {
            let record = plan.schema.records.get(record)?;
            let fields: Map<String, Json> = record
                .fields
                .iter()
                .filter_map(|f| Some((f.name.clone(), sample(plan, f, next, depth + 1)?)))
                .collect();
            Json::Object(fields)
        }
        Type::List { item } => {
            let items: Vec<Json> = (0..1 + n % 3)
                .filter_map(|_| sample_type(plan, item, name, next, depth + 1))
                .collect();
            Json::Array(items)
        }
    })
}

/// The plan as ingestion reads it.
pub fn schema(plan: &Arc<Plan>) -> IngestSchema {
    IngestSchema::new(plan.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANA: &str = r#"{"type":"identify","userId":"ana","timestamp":"2026-03-01T09:00:00Z","sentAt":"2026-03-05T00:00:00Z","traits":{"first_name":"Ana"}}"#;
    const VISIT: &str = r#"{"type":"page","anonymousId":"a-1","timestamp":"2026-03-01T08:00:00Z","properties":{"url":"https://shop.example/tv"}}"#;
    const CLAIM: &str =
        r#"{"type":"alias","userId":"ana","previousId":"a-1","timestamp":"2026-03-01T10:00:00Z"}"#;

    fn plan() -> Arc<Plan> {
        Arc::new(Plan::new("test"))
    }

    fn window(shards: usize) -> Window {
        Window {
            from: 0,
            to: Millis::MAX,
            shards,
        }
    }

    #[test]
    fn lines_are_numbered_from_one_and_blank_lines_skipped() {
        let plan = plan();
        let schema = schema(&plan);
        let text = format!(
            "{ANA}\n\n{{\"userId\":\"x\"}}\n{}\n[1]\n{{\"type\":\"track\",\"userId\":\"x\",\"event\":\"nope\",\"timestamp\":\"2026-03-01T09:00:00Z\"}}\n",
            r#"{"type":"identify","userId":"x","timestamp":"tomorrow"}"#
        );
        let messages = read_messages(&schema, &text);
        assert_eq!(messages.inputs.len(), 1);
        assert_eq!(messages.inputs[0].0, 1);
        // `sentAt` does not move a replayed message.
        assert_eq!(messages.inputs[0].1.occurred_at, 1_772_355_600_000);
        let invalid: Vec<String> = messages.invalid.iter().map(ToString::to_string).collect();
        assert_eq!(
            invalid,
            [
                "line 3: a message needs a `type`: `track`, `identify`, `page` or `alias`",
                "line 4: `timestamp` must be an ISO 8601 date and time, not `tomorrow`",
                "line 5: a message must be a JSON object",
                "line 6: unknown event `nope`: the plan declares no event with this name or wire name",
            ]
        );
    }

    #[test]
    fn shards_add_up_to_one_replay() {
        let plan = plan();
        let schema = schema(&plan);
        let mut lines = Vec::new();
        for n in 0..200 {
            let t = format!("2026-03-01T{:02}:{:02}:00Z", 8 + n / 60, n % 60);
            lines.push(format!(
                r#"{{"type":"page","anonymousId":"a-{n}","timestamp":"{t}","properties":{{"url":"https://shop.example/{n}"}}}}"#
            ));
            if n % 3 == 0 {
                lines.push(format!(
                    r#"{{"type":"alias","userId":"user-{}","previousId":"a-{n}","timestamp":"{t}"}}"#,
                    n % 17
                ));
            }
        }
        let read = || {
            let mut messages = read_messages(&schema, &lines.join("\n"));
            messages
                .inputs
                .sort_by_key(|(line, input)| (input.occurred_at, *line));
            messages
        };
        let (one, timeline) = replay_in(&plan, read().inputs, Vec::new(), window(1), &|_| {}, true);
        let (four, timeline_4) =
            replay_in(&plan, read().inputs, Vec::new(), window(4), &|_| {}, true);
        assert_eq!(one.contacts, 17);
        // Each visit comes before the alias that claims it.
        assert_eq!(one.anonymous, 200, "{one:?}");
        assert_eq!(one, four);
        assert_eq!(timeline.len(), timeline_4.len());
    }

    #[test]
    fn anonymous_visits_wait_for_the_contact_that_claims_them() {
        let plan = plan();
        let schema = schema(&plan);
        let messages = read_messages(&schema, &[CLAIM, ANA, VISIT].join("\n"));
        assert!(messages.invalid.is_empty(), "{:?}", messages.invalid);
        let from = parse_instant("2026-03-01T00:00:00Z").map(|t| t.as_millisecond());
        let to = parse_instant("2026-03-01T09:30:00Z").map(|t| t.as_millisecond());
        let (report, timeline) = replay(&plan, messages, from, to, &|_| {});
        // In time order: the visit (anonymous), then Ana; the alias is after the window.
        assert_eq!(report.messages, 2);
        assert_eq!(report.outside_window, 1);
        assert_eq!(report.anonymous, 1);
        assert_eq!(report.contacts, 1);
        assert!(timeline.windows(2).all(|w| w[0].at <= w[1].at));

        let messages = read_messages(&schema, &[CLAIM, ANA, VISIT].join("\n"));
        let plan_ref: &Plan = &plan;
        let mut replay = Replay::new(plan_ref, 0, Millis::MAX);
        let mut inputs = messages.inputs;
        inputs.sort_by_key(|(line, i)| (i.occurred_at, *line));
        for (_, input) in inputs {
            replay.input(input);
        }
        let history: Vec<&str> = replay.world.history["ana"]
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        // The visit (08:00) moved into Ana's history, in time order, when the alias
        // claimed it.
        assert_eq!(history, ["page_viewed", "contact_created", "$identify"]);
    }
}
