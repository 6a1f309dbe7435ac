//! Realistic Cairn projects of a requested size, generated from a seed.
//!
//! The benchmarks of the parser, the checker and the language server measure a
//! "10k-line" and a "100k-line" project, and the formatter's property tests need varied
//! input; both want text that reads like a project a marketing team keeps, not noise.
//! [`project`] writes a schema, segments, scores, templates and many journeys with
//! tests, and the same `(lines, seed)` always gives the same files.
//!
//! What holds for every generated project:
//! - every file parses without a diagnostic;
//! - names are consistent: journeys and tests use only the events, fields, templates (of
//!   the channel they are sent on), segments, consents, tags and scores the project
//!   declares, or the built-in events; `retry` and `opened()` name a labelled step
//!   written earlier in the same journey; split weights sum to 100; every marketing
//!   channel a journey sends on is in its audience's consents; every template and
//!   segment is used (in turn), so a checker has nothing to report;
//! - the line count is within a few percent of the request (from about 300 lines up;
//!   smaller requests get the smallest project).
//!
//! Test expectations name real journeys, templates and steps, but they are not derived
//! from the semantics (times, quiet hours, caps), so `cairn test` is not expected to
//! pass on a generated project.

use std::cell::Cell;
use std::fmt::Write as _;

/// Generates a project of about `lines` lines: `(file name, source)` pairs, schema first.
pub fn project(lines: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng::new(seed);
    let schema = Schema::new(lines, &mut rng);
    let mut files = vec![
        ("schema.cairn".to_string(), schema.schema_file(&mut rng)),
        ("segments.cairn".to_string(), schema.segments_file(&mut rng)),
        ("scores.cairn".to_string(), schema.scores_file(&mut rng)),
    ];
    for (i, chunk) in schema.templates.chunks(TEMPLATES_PER_FILE).enumerate() {
        files.push((
            format!("templates_{:02}.cairn", i + 1),
            templates_file(chunk, &mut rng),
        ));
    }
    let mut used: usize = files.iter().map(|(_, text)| line_count(text)).sum();
    let mut journey_index = 0;
    let mut file_index = 0;
    while used + MIN_JOURNEY_LINES / 2 < lines {
        file_index += 1;
        let mut out = Out::default();
        out.line(
            0,
            &format!("// {} journeys, batch {file_index}", rng.pick(&PURPOSES)),
        );
        let journeys_here = rng.range(4, 10);
        for _ in 0..journeys_here {
            let remaining = lines.saturating_sub(used + out.lines);
            if remaining < MIN_JOURNEY_LINES / 2 {
                break;
            }
            let target = rng.range(20, 60).min(remaining.max(MIN_JOURNEY_LINES));
            out.blank();
            let summary = JourneyWriter::write(&schema, &mut rng, &mut out, journey_index, target);
            journey_index += 1;
            let remaining = lines.saturating_sub(used + out.lines);
            if summary.trigger_event.is_some() && remaining > 12 && rng.chance(45) {
                out.blank();
                write_test(&schema, &summary, &mut rng, &mut out);
            }
        }
        used += out.lines;
        files.push((format!("journeys_{file_index:04}.cairn"), out.text));
    }
    files
}

/// Templates per file: a real project splits them by area long before this.
const TEMPLATES_PER_FILE: usize = 250;
/// The shortest journey written: trigger, options and a few steps.
const MIN_JOURNEY_LINES: usize = 12;

fn line_count(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

// ------------------------------------------------------------------ randomness

/// xorshift64*: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 spreads nearby seeds apart; xorshift must not start at zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`; `n` must not be zero.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One element of a slice that is never empty.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ------------------------------------------------------------------ output

#[derive(Default)]
struct Out {
    text: String,
    lines: usize,
}

impl Out {
    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.text.push_str("  ");
        }
        self.text.push_str(text);
        self.text.push('\n');
        self.lines += 1 + text.bytes().filter(|&b| b == b'\n').count();
    }

    fn blank(&mut self) {
        self.text.push('\n');
        self.lines += 1;
    }
}

/// Unique names from a product of two word lists, numbered once the product runs out.
fn compound(first: &[&str], second: &[&str], i: usize) -> String {
    let a = first[i % first.len()];
    let b = second[(i / first.len()) % second.len()];
    let round = i / (first.len() * second.len());
    if round == 0 {
        format!("{a}_{b}")
    } else {
        format!("{a}_{b}_{}", round + 1)
    }
}

const PURPOSES: [&str; 20] = [
    "abandoned_cart",
    "welcome_series",
    "birthday_treat",
    "pricing_follow_up",
    "profile_nudge",
    "win_back",
    "vip_split",
    "service_reminder",
    "tv_decision",
    "double_opt_in",
    "lead_handoff",
    "event_invite",
    "channel_preference",
    "cross_sell",
    "review_request",
    "replenishment",
    "loyalty_upgrade",
    "trial_conversion",
    "browse_abandon",
    "price_drop",
];
const MARKETS: [&str; 8] = ["fr", "de", "pl", "es", "it", "uk", "us", "nl"];
const CITIES: [&str; 8] = [
    "Paris", "Lyon", "Berlin", "Kraków", "Madrid", "Milano", "London", "Utrecht",
];
const COUNTRIES: [&str; 8] = ["FR", "DE", "PL", "ES", "IT", "GB", "US", "NL"];
const CATEGORIES: [&str; 8] = [
    "tv",
    "audio",
    "skincare",
    "makeup",
    "fragrance",
    "tyres",
    "laptops",
    "garden",
];
const PAGES: [&str; 6] = [
    "/pricing*",
    "/plans",
    "/demo*",
    "/checkout*",
    "/stores/*",
    "/sale*",
];
const WHY: [&str; 12] = [
    "give the first email a day to land",
    "contacts who opened already know the offer",
    "sms only when email went unread",
    "keep the discount for people who hesitated",
    "the CRM decides who gets a call",
    "marketing asked for a holdout group",
    "legal: no push before the opt-in is confirmed",
    "weekend sends perform better for this list",
    "a second reminder doubled conversions last spring",
    "avoid hitting the same contact twice in a day",
    "the store team follows up in person",
    "mirrors the old Mailchimp automation",
];

// ------------------------------------------------------------------ schema

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Text,
    Money,
    Number,
    Url,
    Bool,
    Items,
}

impl FieldType {
    fn keyword(self) -> &'static str {
        match self {
            FieldType::Text => "string",
            FieldType::Money => "money",
            FieldType::Number => "number",
            FieldType::Url => "url",
            FieldType::Bool => "bool",
            FieldType::Items => "list<line_item>",
        }
    }
}

struct EventDef {
    name: String,
    wire_name: Option<String>,
    /// The name a journey binds its payload to (`as order`).
    binding: String,
    fields: Vec<(String, FieldType)>,
}

impl EventDef {
    fn field_of(&self, ty: FieldType) -> Option<&str> {
        self.fields
            .iter()
            .find(|(_, t)| *t == ty)
            .map(|(n, _)| n.as_str())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Chan {
    Email,
    Sms,
    Push,
}

impl Chan {
    const ALL: [Chan; 3] = [Chan::Email, Chan::Sms, Chan::Push];

    fn keyword(self) -> &'static str {
        match self {
            Chan::Email => "email",
            Chan::Sms => "sms",
            Chan::Push => "push",
        }
    }

    fn consent(self) -> &'static str {
        match self {
            Chan::Email => "email_marketing",
            Chan::Sms => "sms_marketing",
            Chan::Push => "push_marketing",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct TemplateDef {
    name: String,
    channel: Chan,
    transactional: bool,
}

struct Schema {
    events: Vec<EventDef>,
    templates: Vec<TemplateDef>,
    /// Marketing templates by channel, indexes into `templates`.
    by_channel: [Vec<usize>; 3],
    /// Transactional email templates (receipts, confirmations), indexes into `templates`.
    transactional: Vec<usize>,
    segments: Vec<String>,
    scores: Vec<String>,
    tags: Vec<String>,
    /// Round-robin cursors, so every template and segment is used somewhere (the
    /// checker warns about unused ones) once the project is large enough.
    next_template: [Cell<usize>; 3],
    next_transactional: Cell<usize>,
    next_segment: Cell<usize>,
}

/// An event every project declares, named after the seed scenarios.
struct BaseEvent {
    name: &'static str,
    wire_name: Option<&'static str>,
    binding: &'static str,
    fields: &'static [(&'static str, FieldType)],
}

const BASE_EVENTS: &[BaseEvent] = &[
    BaseEvent {
        name: "order_completed",
        wire_name: Some("Order Completed"),
        binding: "order",
        fields: &[
            ("order_id", FieldType::Text),
            ("total", FieldType::Money),
            ("items", FieldType::Items),
        ],
    },
    BaseEvent {
        name: "cart_updated",
        wire_name: None,
        binding: "cart",
        fields: &[
            ("cart_id", FieldType::Text),
            ("value", FieldType::Money),
            ("url", FieldType::Url),
        ],
    },
    BaseEvent {
        name: "product_viewed",
        wire_name: Some("Product Viewed"),
        binding: "product",
        fields: &[
            ("sku", FieldType::Text),
            ("category", FieldType::Text),
            ("price", FieldType::Money),
        ],
    },
    BaseEvent {
        name: "signup_completed",
        wire_name: Some("Signed Up"),
        binding: "signup",
        fields: &[("source", FieldType::Text)],
    },
    BaseEvent {
        name: "vehicle_purchased",
        wire_name: None,
        binding: "car",
        fields: &[("vin", FieldType::Text), ("model", FieldType::Text)],
    },
    BaseEvent {
        name: "service_booked",
        wire_name: None,
        binding: "booking",
        fields: &[("vin", FieldType::Text)],
    },
    BaseEvent {
        name: "event_registered",
        wire_name: None,
        binding: "registration",
        fields: &[("event_id", FieldType::Text), ("title", FieldType::Text)],
    },
    BaseEvent {
        name: "review_submitted",
        wire_name: None,
        binding: "review",
        fields: &[("sku", FieldType::Text), ("rating", FieldType::Number)],
    },
    BaseEvent {
        name: "app_installed",
        wire_name: Some("Application Installed"),
        binding: "install",
        fields: &[("platform", FieldType::Text)],
    },
    BaseEvent {
        name: "subscription_started",
        wire_name: None,
        binding: "subscription",
        fields: &[
            ("plan", FieldType::Text),
            ("price", FieldType::Money),
            ("trial", FieldType::Bool),
        ],
    },
    BaseEvent {
        name: "coupon_redeemed",
        wire_name: None,
        binding: "coupon",
        fields: &[("code", FieldType::Text), ("amount", FieldType::Money)],
    },
    BaseEvent {
        name: "store_visited",
        wire_name: None,
        binding: "visit",
        fields: &[("store_id", FieldType::Text), ("city", FieldType::Text)],
    },
    BaseEvent {
        name: "order_refunded",
        wire_name: None,
        binding: "refund",
        fields: &[("order_id", FieldType::Text), ("amount", FieldType::Money)],
    },
    BaseEvent {
        name: "quote_requested",
        wire_name: None,
        binding: "quote",
        fields: &[
            ("product", FieldType::Text),
            ("budget", FieldType::Money),
            ("url", FieldType::Url),
        ],
    },
];

const EXTRA_EVENT_NOUNS: [&str; 12] = [
    "wishlist",
    "trial",
    "ticket",
    "webinar",
    "referral",
    "download",
    "survey",
    "appointment",
    "gift_card",
    "return",
    "loyalty_card",
    "price_alert",
];
const EXTRA_EVENT_VERBS: [&str; 8] = [
    "added",
    "started",
    "completed",
    "cancelled",
    "requested",
    "viewed",
    "renewed",
    "submitted",
];
const EXTRA_EVENT_FIELDS: [(&str, FieldType); 8] = [
    ("reference", FieldType::Text),
    ("channel", FieldType::Text),
    ("amount", FieldType::Money),
    ("quantity", FieldType::Number),
    ("link", FieldType::Url),
    ("category", FieldType::Text),
    ("first_time", FieldType::Bool),
    ("value", FieldType::Money),
];

const BASE_TAGS: [&str; 8] = [
    "vip_card",
    "newsletter_lead",
    "engaged",
    "churn_risk",
    "reviewer",
    "app_user",
    "webinar_attendee",
    "loyalty_member",
];
const TAG_QUALIFIERS: [&str; 6] = [
    "spring",
    "summer",
    "autumn",
    "winter",
    "launch",
    "clearance",
];
const TAG_SUBJECTS: [&str; 5] = ["buyer", "prospect", "responder", "holdout", "ambassador"];

const SEGMENT_QUALIFIERS: [&str; 10] = [
    "recent",
    "lapsed",
    "frequent",
    "high_value",
    "new",
    "dormant",
    "engaged",
    "curious",
    "loyal",
    "at_risk",
];
const SEGMENT_SUBJECTS: [&str; 8] = [
    "buyers",
    "browsers",
    "subscribers",
    "readers",
    "app_users",
    "shoppers",
    "members",
    "drivers",
];

const SCORE_NAMES: [&str; 3] = ["engagement", "purchase_intent", "loyalty"];

const TEMPLATE_TOPICS: [&str; 18] = [
    "cart",
    "welcome",
    "birthday",
    "pricing",
    "profile",
    "win_back",
    "vip",
    "service",
    "tv",
    "optin",
    "lead",
    "invite",
    "cross_sell",
    "review",
    "restock",
    "loyalty",
    "trial",
    "price_drop",
];
const TEMPLATE_KINDS: [&str; 8] = [
    "reminder", "offer", "note", "nudge", "thanks", "digest", "invite", "alert",
];

impl Schema {
    fn new(lines: usize, rng: &mut Rng) -> Self {
        let mut events: Vec<EventDef> = BASE_EVENTS
            .iter()
            .map(|e| EventDef {
                name: e.name.to_string(),
                wire_name: e.wire_name.map(str::to_string),
                binding: e.binding.to_string(),
                fields: e.fields.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
            })
            .collect();
        for i in 0..lines / 2_000 {
            let name = compound(&EXTRA_EVENT_NOUNS, &EXTRA_EVENT_VERBS, i);
            let binding = EXTRA_EVENT_NOUNS[i % EXTRA_EVENT_NOUNS.len()].to_string();
            let mut fields = Vec::new();
            for _ in 0..rng.range(1, 4) {
                let (n, t) = *rng.pick(&EXTRA_EVENT_FIELDS);
                if !fields.iter().any(|(existing, _)| existing == n) {
                    fields.push((n.to_string(), t));
                }
            }
            events.push(EventDef {
                wire_name: rng.chance(30).then(|| title_case(&name)),
                name,
                binding,
                fields,
            });
        }

        let mut templates = Vec::new();
        let mut by_channel: [Vec<usize>; 3] = Default::default();
        let mut transactional_templates = Vec::new();
        let count = 12 + lines / 40;
        for i in 0..count {
            // Two of each channel first, so every journey shape finds a template.
            let channel = match i {
                0..=5 => Chan::ALL[i % 3],
                _ => match rng.below(100) {
                    0..=59 => Chan::Email,
                    60..=84 => Chan::Sms,
                    _ => Chan::Push,
                },
            };
            let transactional = i >= 6 && channel == Chan::Email && rng.chance(6);
            let base = compound(&TEMPLATE_TOPICS, &TEMPLATE_KINDS, i);
            let name = match channel {
                Chan::Email => base,
                other => format!("{base}_{}", other.keyword()),
            };
            if transactional {
                transactional_templates.push(templates.len());
            } else {
                by_channel[channel.index()].push(templates.len());
            }
            templates.push(TemplateDef {
                name,
                channel,
                transactional,
            });
        }

        let segments = (0..4 + lines / 150)
            .map(|i| compound(&SEGMENT_QUALIFIERS, &SEGMENT_SUBJECTS, i))
            .collect();
        let mut scores: Vec<String> = SCORE_NAMES.iter().map(|s| s.to_string()).collect();
        for i in 0..lines / 10_000 {
            scores.push(compound(&CATEGORIES, &["interest"], i));
        }
        let mut tags: Vec<String> = BASE_TAGS.iter().map(|s| s.to_string()).collect();
        for i in 0..lines / 2_500 {
            tags.push(compound(&TAG_QUALIFIERS, &TAG_SUBJECTS, i));
        }
        Schema {
            events,
            templates,
            by_channel,
            transactional: transactional_templates,
            segments,
            scores,
            tags,
            next_template: Default::default(),
            next_transactional: Cell::new(0),
            next_segment: Cell::new(0),
        }
    }

    /// The next marketing template of `channel`, in turn.
    fn template(&self, channel: Chan) -> &str {
        let list = &self.by_channel[channel.index()];
        let cursor = &self.next_template[channel.index()];
        let i = cursor.get();
        cursor.set(i + 1);
        &self.templates[list[i % list.len()]].name
    }

    /// The next transactional email template, in turn, if there is one.
    fn transactional_template(&self) -> Option<&str> {
        if self.transactional.is_empty() {
            return None;
        }
        let i = self.next_transactional.get();
        self.next_transactional.set(i + 1);
        Some(&self.templates[self.transactional[i % self.transactional.len()]].name)
    }

    /// The next segment, in turn.
    fn segment(&self) -> &str {
        let i = self.next_segment.get();
        self.next_segment.set(i + 1);
        &self.segments[i % self.segments.len()]
    }

    fn schema_file(&self, rng: &mut Rng) -> String {
        let mut out = Out::default();
        out.line(
            0,
            "// schema: the shape of contacts and events; every later use is checked against it",
        );
        let contact: [(&str, &str); 15] = [
            ("email", "email?"),
            ("phone", "phone?"),
            ("push_token", "string?"),
            ("first_name", "string?"),
            ("last_name", "string?"),
            ("birthday", "date?"),
            ("city", "string?"),
            ("country", "string = \"FR\""),
            ("timezone", "timezone = \"UTC\""),
            ("topic", "enum { skincare, makeup, fragrance }?"),
            ("orders", "number = 0"),
            ("lifetime_value", "money = 0 EUR"),
            ("last_campaign", "string?"),
            ("newsletter", "bool = false"),
            ("signed_up", "datetime?"),
        ];
        out.line(0, "contact {");
        for (name, ty) in contact {
            out.line(1, &format!("{name:14} {ty}"));
        }
        out.line(0, "}");
        out.blank();
        out.line(
            0,
            "consent email_marketing for email  // marketing email needs this consent",
        );
        out.line(0, "consent sms_marketing for sms");
        out.line(0, "consent push_marketing for push");
        out.blank();
        out.line(
            0,
            "record line_item { sku string, category string, price money, quantity number = 1 }",
        );
        out.blank();
        for event in &self.events {
            if rng.chance(15) {
                out.line(
                    0,
                    &format!("/// Sent by the {} integration.", rng.pick(&SOURCES)),
                );
            }
            let mut head = format!("event {}", event.name);
            if let Some(wire) = &event.wire_name {
                let _ = write!(head, " \"{wire}\"");
            }
            let inline: Vec<String> = event
                .fields
                .iter()
                .map(|(n, t)| format!("{n} {}", t.keyword()))
                .collect();
            let one_line = format!("{head} {{ {} }}", inline.join(", "));
            if event.fields.len() <= 3 && one_line.len() <= 100 {
                out.line(0, &one_line);
            } else {
                let width = event.fields.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
                out.line(0, &format!("{head} {{"));
                for (n, t) in &event.fields {
                    out.line(1, &format!("{n:width$} {}", t.keyword()));
                }
                out.line(0, "}");
            }
        }
        out.blank();
        for tag in &self.tags {
            if rng.chance(40) {
                out.line(
                    0,
                    &format!("tag {tag} \"{}\"", tag.replace('_', " ").to_lowercase()),
                );
            } else {
                out.line(0, &format!("tag {tag}"));
            }
        }
        out.blank();
        out.line(0, "quiet hours 21:00..08:00 local");
        out.line(
            0,
            "frequency cap 3 marketing per 7d  // over all journeys; sends above it wait",
        );
        out.line(0, "frequency cap 1 sms per 1d skip");
        out.text
    }

    fn segments_file(&self, rng: &mut Rng) -> String {
        let mut out = Out::default();
        out.line(
            0,
            "// segments: who is who, by behaviour (RFM) and by profile",
        );
        for name in &self.segments {
            out.blank();
            if rng.chance(20) {
                out.line(0, &format!("/// Owned by the {} team.", rng.pick(&MARKETS)));
            }
            let description = if rng.chance(40) {
                format!(" \"{}\"", name.replace('_', " "))
            } else {
                String::new()
            };
            let conditions = self.segment_conditions(rng);
            match conditions.as_slice() {
                [one] if one.len() + name.len() + description.len() < 80 => {
                    out.line(0, &format!("segment {name}{description} {{ {one} }}"));
                }
                _ => {
                    out.line(0, &format!("segment {name}{description} {{"));
                    let last = conditions.len() - 1;
                    for (i, c) in conditions.iter().enumerate() {
                        // Operators end a line, so the expression continues on the next.
                        let text = if i < last {
                            format!("{c} {}", if rng.chance(75) { "and" } else { "or" })
                        } else {
                            c.clone()
                        };
                        out.line(if i == 0 { 1 } else { 2 }, &text);
                    }
                    out.line(0, "}");
                }
            }
        }
        out.text
    }

    fn segment_conditions(&self, rng: &mut Rng) -> Vec<String> {
        (0..rng.range(1, 3))
            .map(|_| self.segment_condition(rng))
            .collect()
    }

    fn segment_condition(&self, rng: &mut Rng) -> String {
        let event = rng.pick(&self.events);
        match rng.below(8) {
            0 => format!(
                "sum(order_completed.total within {}d) >= {} EUR",
                rng.pick(&[30, 90, 180, 365]),
                rng.pick(&[50, 100, 250, 500, 1000])
            ),
            1 => format!(
                "count(page_viewed where category == \"{}\" within {}d) >= {}",
                rng.pick(&CATEGORIES),
                rng.pick(&[3, 7, 14]),
                rng.range(2, 5)
            ),
            2 => format!(
                "exists({0}) and not exists({0} within {1}d)",
                event.name,
                rng.pick(&[14, 30, 60, 90])
            ),
            3 => {
                let a = rng.below(CITIES.len());
                let b = (a + 1 + rng.below(CITIES.len() - 1)) % CITIES.len();
                format!("contact.city in [\"{}\", \"{}\"]", CITIES[a], CITIES[b])
            }
            4 => format!(
                "contact.phone is set and contact.orders >= {}",
                rng.range(1, 6)
            ),
            5 => format!(
                "count({} within {}d) >= {}",
                event.name,
                rng.pick(&[7, 30, 90]),
                rng.range(1, 4)
            ),
            6 => format!("contact.country == \"{}\"", rng.pick(&COUNTRIES)),
            _ => format!(
                "contact.lifetime_value > {} EUR or contact.newsletter == true",
                rng.pick(&[100, 300, 800])
            ),
        }
    }

    fn scores_file(&self, rng: &mut Rng) -> String {
        let mut out = Out::default();
        out.line(
            0,
            "// scores: lead scoring, with decay so old interest fades",
        );
        for name in &self.scores {
            out.blank();
            out.line(0, &format!("score {name} {{"));
            out.line(1, "+5 on email_opened");
            out.line(1, "+10 on email_clicked");
            if rng.chance(60) {
                out.line(1, "+20 on page_viewed where path == \"/pricing\"");
            }
            for _ in 0..rng.range(1, 3) {
                let event = rng.pick(&self.events);
                match event.field_of(FieldType::Money) {
                    Some(field) if rng.chance(50) => out.line(
                        1,
                        &format!(
                            "+{} on {} where {field} > {} EUR",
                            rng.range(5, 40),
                            event.name,
                            rng.pick(&[20, 50, 100])
                        ),
                    ),
                    _ => out.line(1, &format!("+{} on {}", rng.range(1, 25), event.name)),
                }
            }
            if rng.chance(30) {
                out.line(1, "-15 on email_complained");
            }
            out.line(
                1,
                &format!(
                    "decay {}% every {}d",
                    rng.pick(&[5, 10, 20, 25]),
                    rng.pick(&[7, 14, 30])
                ),
            );
            out.line(0, "}");
        }
        out.text
    }
}

const SOURCES: [&str; 5] = ["Shopify", "Segment", "mobile app", "POS", "booking"];

fn title_case(snake: &str) -> String {
    snake
        .split('_')
        .map(capitalized)
        .collect::<Vec<_>>()
        .join(" ")
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

fn templates_file(templates: &[TemplateDef], rng: &mut Rng) -> String {
    let mut out = Out::default();
    out.line(
        0,
        "// templates: the words contacts read; variables are checked where each is sent",
    );
    for t in templates {
        out.blank();
        let topic = t.name.split('_').next().unwrap_or("news");
        let head = format!(
            "template {} {}{}",
            t.name,
            t.channel.keyword(),
            if t.transactional {
                " transactional"
            } else {
                ""
            }
        );
        match t.channel {
            Chan::Email => {
                out.line(0, &format!("{head} {{"));
                out.line(
                    1,
                    &format!(
                        "subject \"{}, {{{{ contact.first_name | default('friend') }}}}\"",
                        rng.pick(&SUBJECTS)
                    ),
                );
                if rng.chance(30) {
                    out.line(1, &format!("preheader \"Our {topic} picks for you\""));
                }
                let unsubscribe = if t.transactional {
                    "<p>You receive this email because of your account.</p>"
                } else {
                    "<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>"
                };
                if rng.chance(50) {
                    out.line(1, "html \"\"\"");
                    out.line(0, "<p>Hi {{ contact.first_name | default('there') }},</p>");
                    out.line(0, &format!("<p>{}</p>", rng.pick(&BODIES)));
                    out.line(0, unsubscribe);
                    out.line(0, "\"\"\"");
                } else {
                    let body = format!("<p>{}</p>{unsubscribe}", rng.pick(&BODIES));
                    out.line(1, &format!("html \"{}\"", body.replace('"', "\\\"")));
                }
                out.line(0, "}");
            }
            Chan::Sms => out.line(
                0,
                &format!(
                    "{head} {{ text \"{} Reply STOP to opt out.\" }}",
                    rng.pick(&SMS_TEXTS)
                ),
            ),
            Chan::Push => {
                out.line(0, &format!("{head} {{"));
                out.line(1, &format!("title \"{}\"", rng.pick(&SUBJECTS)));
                out.line(1, &format!("body \"{}\"", rng.pick(&SMS_TEXTS)));
                out.line(0, "}");
            }
        }
    }
    out.text
}

const SUBJECTS: [&str; 8] = [
    "You left something behind",
    "A little something for you",
    "Happy birthday",
    "Your car is due for a check",
    "Still deciding?",
    "We miss you",
    "New arrivals picked for you",
    "Your order is on its way",
];
const BODIES: [&str; 6] = [
    "Your cart is still waiting, and so are we.",
    "Here is 10% off your next order.",
    "Book your service in two clicks.",
    "Tell us what you thought of your purchase.",
    "Our experts compared the best models for you.",
    "Free shipping on everything this week.",
];
const SMS_TEXTS: [&str; 6] = [
    "Your cart is waiting.",
    "Happy birthday from all of us!",
    "Time for your service: book online.",
    "Your coupon expires tonight.",
    "Doors open at 18:00, see you there.",
    "New in store for you.",
];

// ------------------------------------------------------------------ journeys

/// What a test needs to know about the journey it exercises.
struct JourneySummary {
    name: String,
    trigger_event: Option<usize>,
    channels: Vec<Chan>,
    sends: Vec<(Chan, String)>,
    labels: Vec<String>,
    splits: Vec<(String, Vec<String>)>,
    tags_added: Vec<String>,
    has_goal: bool,
}

struct JourneyWriter<'a> {
    schema: &'a Schema,
    rng: &'a mut Rng,
    out: &'a mut Out,
    /// Channels in the audience's consents; sends use only these.
    channels: Vec<Chan>,
    /// The trigger event and its binding, when the trigger binds one.
    bound: Option<usize>,
    /// Labelled top-level sends written so far: what `retry` may name.
    labels: Vec<String>,
    /// The email and push ones among them: what `opened()` may name.
    openable: Vec<String>,
    label_count: usize,
    summary: JourneySummary,
}

const SEND_LABELS: [&str; 8] = [
    "remind",
    "welcome",
    "nudge",
    "offer",
    "follow_up",
    "last_call",
    "check_in",
    "teaser",
];
const SPLIT_LABELS: [&str; 4] = ["incentive", "creative_test", "channel_test", "timing_test"];
const ARM_NAMES: [&str; 6] = [
    "control",
    "discount",
    "free_shipping",
    "bonus",
    "story",
    "holdout",
];

impl<'a> JourneyWriter<'a> {
    /// Writes one journey of about `target` lines.
    fn write(
        schema: &'a Schema,
        rng: &'a mut Rng,
        out: &'a mut Out,
        index: usize,
        target: usize,
    ) -> JourneySummary {
        let name = compound(&PURPOSES, &MARKETS, index);
        let mut channels = vec![Chan::Email];
        if rng.chance(45) {
            channels.push(Chan::Sms);
        }
        if rng.chance(25) {
            channels.push(Chan::Push);
        }
        if rng.chance(8) {
            // An sms- or push-only journey.
            channels.remove(0);
            if channels.is_empty() {
                channels.push(Chan::Sms);
            }
        }
        let start = out.lines;
        let mut w = JourneyWriter {
            schema,
            rng,
            out,
            channels: channels.clone(),
            bound: None,
            labels: Vec::new(),
            openable: Vec::new(),
            label_count: 0,
            summary: JourneySummary {
                name: name.clone(),
                trigger_event: None,
                channels,
                sends: Vec::new(),
                labels: Vec::new(),
                splits: Vec::new(),
                tags_added: Vec::new(),
                has_goal: false,
            },
        };
        w.header(&name);
        let used = w.out.lines - start;
        let budget = target.saturating_sub(used + 1).max(2);
        w.steps(1, budget, true);
        w.out.line(0, "}");
        w.summary.labels = w.labels;
        w.summary
    }

    fn header(&mut self, name: &str) {
        if self.rng.chance(25) {
            self.out.line(
                0,
                &format!("/// {}.", capitalized(WHY[self.rng.below(WHY.len())])),
            );
        }
        if self.rng.chance(30) {
            self.out.line(
                0,
                &format!("journey {name} \"{}\" {{", name.replace('_', " ")),
            );
        } else {
            self.out.line(0, &format!("journey {name} {{"));
        }
        let trigger = self.trigger();
        self.out.line(1, &format!("when {trigger}"));
        let mut audience: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("consented({})", c.consent()))
            .collect();
        match self.rng.below(100) {
            0..=24 => audience.push(format!(
                "contact.country == \"{}\"",
                self.rng.pick(&COUNTRIES)
            )),
            // A segment's name reads as whether the contact is in it.
            25..=54 => audience.push(self.schema.segment().to_string()),
            55..=59 => audience.push(format!("not {}", self.schema.segment())),
            _ => {}
        }
        self.out
            .line(1, &format!("audience {}", audience.join(" and ")));
        match self.rng.below(10) {
            0..=5 => {
                let d = format!("{}d", self.rng.pick(&[7, 14, 30, 90]));
                self.out.line(1, &format!("reenter after {d}"));
            }
            6..=8 => self.out.line(1, "reenter never"),
            _ => self.out.line(1, "reenter always"),
        }
        if self.rng.chance(70) {
            self.summary.has_goal = true;
            // Most journeys aim at a purchase.
            let goal = if self.rng.chance(50) {
                &self.schema.events[0]
            } else {
                self.rng.pick(&self.schema.events)
            };
            match goal.field_of(FieldType::Money) {
                Some(field) if self.rng.chance(30) => self.out.line(
                    1,
                    &format!(
                        "goal {} where {field} > 0 EUR within {}d",
                        goal.name,
                        self.rng.pick(&[14, 30, 60])
                    ),
                ),
                _ => self.out.line(
                    1,
                    &format!(
                        "goal {} within {}d",
                        goal.name,
                        self.rng.pick(&[7, 14, 30, 60])
                    ),
                ),
            }
        }
        self.out.line(1, "exit when unsubscribed");
        if self.rng.chance(10) {
            self.out.line(1, "quiet hours 22:00..07:00 local");
        }
        if self.rng.chance(8) {
            self.out.line(1, "frequency cap 2 marketing per 1d skip");
        }
        self.out.blank();
    }

    fn trigger(&mut self) -> String {
        let schema = self.schema;
        match self.rng.below(20) {
            0..=10 => {
                let i = self.rng.below(schema.events.len());
                let event = &schema.events[i];
                self.bound = Some(i);
                self.summary.trigger_event = Some(i);
                let mut t = format!("{} as {}", event.name, event.binding);
                // The filter reads the event's own fields, unqualified.
                if self.rng.chance(35) {
                    if let Some(field) = event.field_of(FieldType::Money) {
                        let _ = write!(
                            t,
                            " where {field} >= {} EUR",
                            self.rng.pick(&[10, 50, 100, 250])
                        );
                    } else if let Some(field) = event.field_of(FieldType::Text) {
                        let _ = write!(t, " where {field} != \"\"");
                    }
                }
                if self.rng.chance(25) {
                    let other = self.rng.pick(&schema.events);
                    if other.name != event.name {
                        let _ = write!(
                            t,
                            " unless {} within {}",
                            other.name,
                            self.rng.pick(&["2h", "30m", "1d", "3 days"])
                        );
                    }
                }
                t
            }
            11 => format!(
                "anniversary of contact.birthday at {} local",
                self.rng.pick(&["09:00", "10:30", "08:00"])
            ),
            12 => {
                let event = if self.rng.chance(50) {
                    "page_viewed"
                } else {
                    self.rng.pick(&schema.events).name.as_str()
                };
                format!(
                    "no {event} for {}",
                    self.rng.pick(&["7d", "30d", "90d", "2w"])
                )
            }
            13 | 14 => format!(
                "{} segment {}",
                if self.rng.chance(80) {
                    "enters"
                } else {
                    "leaves"
                },
                schema.segment()
            ),
            15 => format!(
                "tag {} {}",
                self.rng.pick(&schema.tags),
                if self.rng.chance(80) {
                    "added"
                } else {
                    "removed"
                }
            ),
            16 => format!("page \"{}\" visited", self.rng.pick(&PAGES)),
            17 => "contact created".to_string(),
            _ => format!(
                "consent {} granted",
                self.rng.pick(&self.channels).consent()
            ),
        }
    }

    /// A label unique in the journey, from `pool`.
    fn new_label(&mut self, pool: &[&str]) -> String {
        let base = pool[self.label_count % pool.len()];
        let round = self.label_count / pool.len();
        self.label_count += 1;
        if round == 0 {
            base.to_string()
        } else {
            format!("{base}_{}", round + 1)
        }
    }

    fn channel(&mut self) -> Chan {
        *self.rng.pick(&self.channels)
    }

    /// Writes steps filling `budget` lines at `depth`. Top-level steps may be labelled
    /// for later `retry` and `opened()`, and may be compound.
    fn steps(&mut self, depth: usize, budget: usize, top: bool) {
        let mut left = budget;
        let mut first = true;
        while left > 0 {
            let before = self.out.lines;
            self.step(depth, left, top, first);
            first = false;
            left = left.saturating_sub(self.out.lines - before);
        }
    }

    fn step(&mut self, depth: usize, left: usize, top: bool, first: bool) {
        let roll = self.rng.below(100);
        if first && top {
            // Journeys open with a send: the message the trigger is about.
            self.send(depth, top);
            return;
        }
        match roll {
            0..=21 => self.send(depth, top),
            22..=35 => self.wait(depth),
            36..=40 if left >= 2 && !first => {
                self.out.blank();
            }
            41..=45 if !first => {
                let why = self.rng.pick(&WHY);
                self.out.line(depth, &format!("// {why}"));
            }
            46..=55 if left >= 5 && depth < 4 => self.if_step(depth, left),
            56..=62 if left >= 4 && depth < 4 => self.split(depth, left, top),
            63..=69 if left >= 5 && depth < 4 => self.wait_for(depth, left),
            70..=74 if !self.openable.is_empty() => self.inline_if(depth),
            75..=79 => {
                let tag = self.rng.pick(&self.schema.tags).clone();
                if self.rng.chance(80) {
                    self.summary.tags_added.push(tag.clone());
                    self.out.line(depth, &format!("tag add {tag}"));
                } else {
                    self.out.line(depth, &format!("tag remove {tag}"));
                }
            }
            80..=84 => {
                let score = self.rng.pick(&self.schema.scores).clone();
                let delta = self.rng.range(1, 30);
                self.out.line(depth, &format!("score {score} +{delta}"));
            }
            85..=87 => {
                let name = self.summary.name.clone();
                self.out
                    .line(depth, &format!("set contact.last_campaign = \"{name}\""));
            }
            88..=90 => self.post(depth, left),
            91..=93 if self.channels.len() == 3 => {
                let e = self.schema.template(Chan::Email).to_string();
                let s = self.schema.template(Chan::Sms).to_string();
                let p = self.schema.template(Chan::Push).to_string();
                self.out.line(
                    depth,
                    &format!("send via preferred channel [{e}, {s}, {p}]"),
                );
            }
            94..=96 => {
                let until = self.rng.pick(&[
                    "wait until 09:00 local",
                    "wait until 09:00..18:00 local",
                    "wait until 18:30 local",
                ]);
                self.out.line(depth, until);
            }
            _ => self.send(depth, top),
        }
    }

    fn send(&mut self, depth: usize, top: bool) {
        let channel = self.channel();
        // Now and then a receipt or confirmation, which needs no marketing consent.
        let transactional = match channel {
            Chan::Email if self.rng.chance(8) => self.schema.transactional_template(),
            _ => None,
        };
        let template = match transactional {
            Some(t) => t.to_string(),
            None => self.schema.template(channel).to_string(),
        };
        self.summary.sends.push((channel, template.clone()));
        let mut text = String::new();
        if top && self.rng.chance(45) {
            let label = self.new_label(&SEND_LABELS);
            let _ = write!(text, "{label}: ");
            if channel != Chan::Sms {
                self.openable.push(label.clone());
            }
            self.labels.push(label);
        }
        let _ = write!(text, "send {} {template}", channel.keyword());
        if channel == Chan::Email && self.rng.chance(15) {
            text.push_str(" at best time");
        }
        if self.rng.chance(8) {
            let _ = write!(text, "  // {}", self.rng.pick(&WHY));
        }
        self.out.line(depth, &text);
    }

    fn wait(&mut self, depth: usize) {
        let d = self
            .rng
            .pick(&["1h", "3h", "1d", "2d", "3d", "1w", "2 days", "12h"]);
        self.out.line(depth, &format!("wait {d}"));
    }

    fn condition(&mut self) -> String {
        let schema = self.schema;
        match self.rng.below(8) {
            7 => schema.segment().to_string(),
            0 | 1 if !self.openable.is_empty() => {
                format!("not opened({})", self.rng.pick(&self.openable))
            }
            2 => {
                if let Some(event) = self.bound.map(|i| &schema.events[i])
                    && let Some(field) = event.field_of(FieldType::Money)
                {
                    return format!(
                        "{}.{field} > {} EUR",
                        event.binding,
                        self.rng.pick(&[50, 100, 200])
                    );
                }
                "contact.phone is set".to_string()
            }
            3 => format!("contact.orders >= {}", self.rng.range(1, 5)),
            4 => format!(
                "count({} within {}d) >= {}",
                self.rng.pick(&schema.events).name,
                self.rng.pick(&[7, 30]),
                self.rng.range(1, 3)
            ),
            5 => format!(
                "contact.country in [\"{}\", \"{}\"]",
                self.rng.pick(&COUNTRIES),
                self.rng.pick(&COUNTRIES)
            ),
            _ => format!(
                "exists({} within {}d)",
                self.rng.pick(&schema.events).name,
                self.rng.pick(&[1, 3, 7])
            ),
        }
    }

    /// `if not opened(remind) { send sms cart_sms }` on one line.
    fn inline_if(&mut self, depth: usize) {
        let label = self.rng.pick(&self.openable).clone();
        let channel = self.channel();
        let template = self.schema.template(channel).to_string();
        self.summary.sends.push((channel, template.clone()));
        self.out.line(
            depth,
            &format!(
                "if not opened({label}) {{ send {} {template} }}",
                channel.keyword()
            ),
        );
    }

    /// Nested steps: sends, waits, tags and scores, or a nested compound now and then.
    fn inner_steps(&mut self, depth: usize, count: usize) {
        self.steps(depth, count, false);
    }

    fn if_step(&mut self, depth: usize, left: usize) {
        let condition = self.condition();
        self.out.line(depth, &format!("if {condition} {{"));
        let with_else = left >= 6 && self.rng.chance(50);
        let room = left - if with_else { 3 } else { 2 };
        let then_lines = self.rng.range(1, room.clamp(1, 4));
        self.inner_steps(depth + 1, then_lines);
        if with_else {
            let else_room = room.saturating_sub(then_lines).max(1);
            self.out.line(depth, "} else {");
            let else_lines = self.rng.range(1, else_room.clamp(1, 3));
            self.inner_steps(depth + 1, else_lines);
        }
        self.out.line(depth, "}");
    }

    fn split(&mut self, depth: usize, left: usize, top: bool) {
        const WEIGHTS: [&[u32]; 8] = [
            &[50, 50],
            &[70, 30],
            &[80, 20],
            &[90, 10],
            &[34, 33, 33],
            &[50, 25, 25],
            &[40, 30, 30],
            &[25, 25, 25, 25],
        ];
        let fitting: Vec<&[u32]> = WEIGHTS
            .iter()
            .copied()
            .filter(|w| w.len() + 2 <= left)
            .collect();
        let weights = *self.rng.pick(&fitting);
        debug_assert_eq!(weights.iter().sum::<u32>(), 100);
        let mut head = String::new();
        let label = top.then(|| self.new_label(&SPLIT_LABELS));
        if let Some(label) = &label {
            let _ = write!(head, "{label}: ");
        }
        head.push_str("split {");
        self.out.line(depth, &head);
        let first_arm = self.rng.below(ARM_NAMES.len());
        let mut arms = Vec::new();
        let mut room = left.saturating_sub(2 + weights.len());
        for (i, weight) in weights.iter().enumerate() {
            let arm = ARM_NAMES[(first_arm + i) % ARM_NAMES.len()];
            arms.push(arm.to_string());
            if room >= 3 && self.rng.chance(35) {
                self.out.line(depth + 1, &format!("{weight}% {arm}: {{"));
                let lines = self.rng.range(1, room.min(3) - 1);
                self.inner_steps(depth + 2, lines);
                self.out.line(depth + 1, "}");
                room = room.saturating_sub(lines + 1);
            } else {
                let body = if arm == "holdout" {
                    "exit".to_string()
                } else {
                    let channel = self.channel();
                    let template = self.schema.template(channel).to_string();
                    self.summary.sends.push((channel, template.clone()));
                    format!("send {} {template}", channel.keyword())
                };
                self.out
                    .line(depth + 1, &format!("{weight}% {arm}: {body}"));
            }
        }
        self.out.line(depth, "}");
        if let Some(label) = label {
            self.summary.splits.push((label, arms));
        }
    }

    fn wait_for(&mut self, depth: usize, left: usize) {
        let schema = self.schema;
        let event = self.rng.pick(&schema.events);
        let mut head = format!("wait for {}", event.name);
        // Match the awaited event to the trigger's payload when they share a field.
        if let Some(bound) = self.bound.map(|i| &schema.events[i])
            && let Some((field, _)) = event
                .fields
                .iter()
                .find(|(n, t)| *t == FieldType::Text && bound.fields.iter().any(|(b, _)| b == n))
        {
            let _ = write!(head, " where {field} == {}.{field}", bound.binding);
        }
        let _ = write!(head, " within {}d {{", self.rng.pick(&[3, 7, 14, 30]));
        self.out.line(depth, &head);
        let room = left - 3;
        let then_lines = self.rng.range(1, room.clamp(1, 3));
        self.inner_steps(depth + 1, then_lines);
        self.out.line(depth, "} timeout {");
        if !self.labels.is_empty() && self.rng.chance(50) {
            let label = self.rng.pick(&self.labels).clone();
            self.out.line(
                depth + 1,
                &format!("retry {label} at most {} times", self.rng.range(1, 3)),
            );
        } else {
            let lines = self
                .rng
                .range(1, room.saturating_sub(then_lines).clamp(1, 2));
            self.inner_steps(depth + 1, lines);
        }
        self.out.line(depth, "}");
    }

    fn post(&mut self, depth: usize, left: usize) {
        let name = self.summary.name.clone();
        let host = self
            .rng
            .pick(&["crm.example", "hooks.example.com", "erp.example"]);
        if left >= 5 && self.rng.chance(40) {
            self.out
                .line(depth, &format!("post \"https://{host}/journeys\" {{"));
            self.out.line(depth + 1, "contact: contact.email");
            self.out.line(depth + 1, &format!("journey: \"{name}\""));
            self.out
                .line(depth + 1, "spend: sum(order_completed.total within 365d)");
            self.out.line(depth, "}");
        } else {
            self.out.line(
                depth,
                &format!(
                    "post \"https://{host}/hooks/{name}\" {{ contact: contact.email, journey: \"{name}\" }}"
                ),
            );
        }
    }
}

// ------------------------------------------------------------------ tests

const CONTACTS: [(&str, &str, &str); 5] = [
    ("ana", "ana@example.com", "+48500100200"),
    ("ben", "ben@example.com", "+33612345678"),
    ("chloe", "chloe@example.com", "+4915123456789"),
    ("dario", "dario@example.com", "+393471234567"),
    ("eva", "eva@example.com", "+31612345678"),
];

fn write_test(schema: &Schema, journey: &JourneySummary, rng: &mut Rng, out: &mut Out) {
    let Some(event_index) = journey.trigger_event else {
        return;
    };
    let event = &schema.events[event_index];
    let (who, email, phone) = *rng.pick(&CONTACTS);
    let day = rng.range(1, 20);
    out.line(
        0,
        &format!(
            "test \"{}: {}\" {{",
            journey.name,
            rng.pick(&[
                "the first message goes out",
                "follow-up when unopened",
                "conversion ends the journey",
                "nothing after unsubscribing",
            ])
        ),
    );
    let consents: Vec<&str> = journey.channels.iter().map(|c| c.consent()).collect();
    out.line(
        1,
        &format!(
            "contact {who} {{ email: \"{email}\", phone: \"{phone}\", consents: [{}] }}",
            consents.join(", ")
        ),
    );
    let payload: Vec<String> = event
        .fields
        .iter()
        .map(|(name, ty)| format!("{name}: {}", payload_value(*ty, name, rng)))
        .collect();
    let at = format!("2026-03-{day:02}T10:00Z");
    if payload.is_empty() {
        out.line(1, &format!("at {at} {who} sends {}", event.name));
    } else {
        out.line(
            1,
            &format!(
                "at {at} {who} sends {} {{ {} }}",
                event.name,
                payload.join(", ")
            ),
        );
    }
    for (channel, template) in journey.sends.iter().take(2) {
        out.line(
            1,
            &format!("expect send {} {template} to {who}", channel.keyword()),
        );
    }
    if let Some(label) = journey.labels.first()
        && rng.chance(50)
    {
        out.line(
            1,
            &format!(
                "at 2026-03-{:02}T08:15Z {who} opens {}.{label}",
                day + 1,
                journey.name
            ),
        );
    }
    if let Some((label, arms)) = journey.splits.first() {
        if rng.chance(50) {
            out.line(
                1,
                &format!(
                    "expect split {}.{label} for {who} arm {}",
                    journey.name,
                    rng.pick(arms)
                ),
            );
        } else {
            out.line(
                1,
                &format!("expect split {}.{label} for {who}", journey.name),
            );
        }
    }
    if let Some(tag) = journey.tags_added.first() {
        out.line(1, &format!("expect tag {tag} added for {who}"));
    }
    if journey.has_goal && rng.chance(50) {
        out.line(
            1,
            &format!(
                "expect goal {} for {who} until 2026-04-30T00:00Z",
                journey.name
            ),
        );
    }
    if rng.chance(40) {
        out.line(
            1,
            &format!(
                "at 2026-03-{:02}T12:00Z {who} unsubscribes from email",
                day + 2
            ),
        );
        out.line(
            1,
            &format!(
                "expect exit {} for {who} reason exit_condition",
                journey.name
            ),
        );
    }
    out.line(
        1,
        &format!("expect nothing for {who} until 2026-05-01T00:00Z"),
    );
    out.line(0, "}");
}

fn payload_value(ty: FieldType, name: &str, rng: &mut Rng) -> String {
    match ty {
        FieldType::Text => format!("\"{name}-{}\"", rng.range(1, 999)),
        FieldType::Money => format!("{} EUR", rng.range(5, 900)),
        FieldType::Number => rng.range(1, 5).to_string(),
        FieldType::Url => format!("\"https://shop.example/{name}/{}\"", rng.range(1, 999)),
        FieldType::Bool => if rng.chance(50) { "true" } else { "false" }.to_string(),
        FieldType::Items => format!(
            "[{{ sku: \"sku-{}\", category: \"{}\", price: {} EUR }}]",
            rng.range(1, 999),
            rng.pick(&CATEGORIES),
            rng.range(5, 900)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn assert_clean(lines: usize, seed: u64) {
        let files = project(lines, seed);
        let mut total = 0;
        for (name, text) in &files {
            let parsed = parse(text);
            assert!(
                parsed.diagnostics.is_empty(),
                "{name} (lines {lines}, seed {seed}) has diagnostics: {:#?}",
                parsed.diagnostics
            );
            total += line_count(text);
        }
        let error = total.abs_diff(lines) as f64 / lines as f64;
        assert!(
            error <= 0.05,
            "asked for {lines} lines, got {total} ({:.1}% off)",
            error * 100.0
        );
    }

    #[test]
    fn a_thousand_lines_parse_cleanly() {
        for seed in 0..8 {
            assert_clean(1_000, seed);
        }
    }

    #[test]
    fn twenty_thousand_lines_parse_cleanly() {
        assert_clean(20_000, 42);
    }

    #[test]
    fn the_same_seed_gives_the_same_project() {
        assert_eq!(project(2_000, 7), project(2_000, 7));
        assert_ne!(project(2_000, 7), project(2_000, 8));
    }

    #[test]
    fn split_weights_sum_to_a_hundred_and_labels_come_first() {
        use crate::ast::{ArmBody, ItemKind, MemberKind, Step, StepKind};

        fn visit(step: &Step, labels: &mut Vec<String>) {
            match &step.kind {
                StepKind::Split(arms) => {
                    let sum: f64 = arms
                        .iter()
                        .map(|a| a.weight.value.text.parse::<f64>().unwrap_or(0.0))
                        .sum();
                    assert!((sum - 100.0).abs() < 1e-9, "split weights sum to {sum}");
                    for arm in arms {
                        if let ArmBody::Block(b) = &arm.body {
                            b.steps.iter().for_each(|s| visit(s, labels));
                        }
                    }
                }
                StepKind::Retry { target, .. } => {
                    assert!(labels.contains(&target.name), "retry of unknown {target:?}")
                }
                StepKind::If(i) => i.then.steps.iter().for_each(|s| visit(s, labels)),
                StepKind::WaitFor(w) => {
                    w.then.steps.iter().for_each(|s| visit(s, labels));
                    w.timeout
                        .iter()
                        .flat_map(|b| &b.steps)
                        .for_each(|s| visit(s, labels));
                }
                _ => {}
            }
            if let Some(label) = &step.label {
                labels.push(label.name.clone());
            }
        }

        for (_, text) in project(5_000, 3) {
            for item in parse(&text).file.items {
                if let ItemKind::Journey(j) = item.kind {
                    let mut labels = Vec::new();
                    for m in &j.members {
                        if let MemberKind::Step(s) = &m.kind {
                            visit(s, &mut labels);
                        }
                    }
                }
            }
        }
    }
}
