//! The diagnostics catalogue: every code the compiler can report, its one-line title and
//! the long explanation `cairn explain CODE` prints. Codes are stable: a code is never
//! reused for another problem.

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    pub code: &'static str,
    pub title: &'static str,
    pub explanation: &'static str,
}

macro_rules! catalogue {
    ($( $name:ident = $code:literal, $title:literal, $explanation:literal; )*) => {
        $( pub const $name: &str = $code; )*
        /// Every code, in order.
        pub const ALL: &[CodeInfo] = &[
            $( CodeInfo { code: $code, title: $title, explanation: $explanation }, )*
        ];
    };
}

/// The long form of `code`, if it exists (case-insensitive).
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    ALL.iter()
        .find(|c| c.code.eq_ignore_ascii_case(code.trim()))
}

catalogue! {
    SYNTAX = "E0001", "syntax error",
"The text does not follow Cairn's grammar at the marked place. The message says what the
parser expected there.

    journey cart {
      wait 1d
      send email        // error: expected a name
    }

A file is read one top-level item at a time, so the other items of the file are still
checked. Fix the first error of an item first: later ones in the same item are not shown
until it parses.";

    UNTERMINATED_STRING = "E0002", "unterminated string",
"A string opened with `\"` must close on the same line. For text over several lines, use a
triple-quoted string:

    template welcome email {
      subject \"Welcome\"
      html \"\"\"
        <p>Hello {{ contact.first_name | default('there') }}</p>
        <p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>
      \"\"\"
    }";

    UNCLOSED_DELIMITER = "E0003", "unclosed bracket",
"A `{`, `(` or `[` is never closed. Cairn notices this when the next top-level item starts
(a line beginning with `journey`, `segment`, `template`, ... in the first column) and
reports the innermost bracket still open. Add the missing `}` where the block ends.";

    UNMATCHED_DELIMITER = "E0004", "unmatched closing bracket",
"A `}`, `)` or `]` has no opening partner, or closes a different kind of bracket than the
one that is open. Remove it or add the opening bracket it belongs to.";

    INVALID_LITERAL = "E0005", "invalid literal",
"A duration, date, time of day or number is malformed.

- durations are a whole number and a unit: `30s`, `15m`, `2h`, `7d`, `2w`, or calendar
  time `6 months`, `1 year` (spelled-out `3 days`, `2 hours` work too);
- dates are `YYYY-MM-DD` and must exist (`2026-02-30` does not);
- times of day are `HH:MM` from `00:00` to `23:59`;
- date-times are ISO 8601 with a zone: `2026-03-01T10:00Z` or `2026-03-01T10:00+01:00`.";

    TOO_DEEP = "E0006", "nesting too deep",
"Brackets nest more than 64 levels deep, or an expression chains more than 1,000 operators.
Real journeys never need this: name parts of the logic as segments and combine them.";

    NOT_UTF8 = "E0007", "file is not UTF-8",
"Cairn sources are UTF-8 text. The marked byte is not valid UTF-8; save the file as UTF-8.";

    UNKNOWN_EVENT = "E0101", "unknown event",
"The name does not match a declared event or a built-in one. Declare it:

    event order_completed \"Order Completed\" { order_id string, total money }

Built-in events: `page_viewed`, `contact_created`, `email_delivered`, `email_opened`,
`email_clicked`, `email_bounced`, `email_complained`, `sms_delivered`, `sms_clicked`,
`push_opened`, `unsubscribed`, `consent_granted`, `tag_added`, `tag_removed`.";

    UNKNOWN_FIELD = "E0102", "unknown field",
"The contact, event or record has no field of that name. Contact fields are declared in the
`contact { ... }` block, event fields in the event's braces, record fields in the record.
Every contact also has `id` and `created_at`.";

    UNKNOWN_TEMPLATE = "E0103", "unknown template",
"`send` names a template that is not declared. Declare it with
`template NAME email|sms|push { ... }`.";

    UNKNOWN_SEGMENT = "E0104", "unknown segment",
"The segment is not declared. Declare it with `segment NAME { condition }`.";

    UNKNOWN_CONSENT = "E0105", "unknown consent",
"The consent is not declared. Declare it with `consent NAME for email|sms|push`.";

    UNKNOWN_TAG = "E0106", "unknown tag",
"Tags are declared so that a typo cannot create a new one: `tag vip_card`.";

    UNKNOWN_SCORE = "E0107", "unknown score",
"The score is not declared. Declare it with `score NAME { +5 on email_opened }`.";

    UNKNOWN_LABEL = "E0108", "unknown step label",
"A step label referenced by `retry`, `opened(...)`, `clicked(...)`, `migrate` or a test does
not exist in that journey. Label a step by writing `NAME:` before it:

    remind: send email cart_reminder";

    UNKNOWN_TYPE = "E0109", "unknown type",
"A field's type is neither a built-in type nor a declared record. Built-in types: `string`,
`email`, `phone`, `url`, `number`, `int`, `bool`, `date`, `datetime`, `time`, `timezone`,
`duration`, `money`, `percent`, `enum { a, b }`, `list<T>`; add `?` for optional.";

    UNKNOWN_FUNCTION = "E0110", "unknown function",
"Functions available in expressions: `consented(consent)`, `has_tag(tag)`, `opened(step)`,
`clicked(step)`, `exists(event ...)`, `count(event ...)`, `sum(event.field ...)`,
`avg(...)`, `min(...)`, `max(...)`, `last(event.field)`, `days_since(date)`,
`default(optional, fallback)`, `now()`, `lower(text)`, `upper(text)`, `len(list)`.
Aggregates take `where CONDITION` and `within DURATION` inside the parentheses:
`count(page_viewed where category == \"tv\" within 7d)`.";

    UNKNOWN_NAME = "E0111", "unknown name",
"A bare name in an expression must be a segment (true when the contact is in it), a score
(its current value), a binding introduced with `as` (`when cart_updated as cart`), `contact`,
or, inside `where`, a field of the event being filtered.";

    UNKNOWN_JOURNEY = "E0112", "unknown journey",
"A test refers to a journey that is not declared.";

    UNKNOWN_TEST_CONTACT = "E0113", "unknown test contact",
"Test inputs and expectations name contacts declared in the same test with
`contact NAME { ... }`.";

    DUPLICATE = "E0120", "duplicate definition",
"Two declarations share a name in the same namespace (events, records, segments, scores,
templates, consents, tags, journeys). All files of a project share one namespace, so the
other definition may be in another file. Rename one of them.";

    DUPLICATE_FIELD = "E0121", "duplicate field",
"A contact schema, record, event, object or test contact lists the same field twice.";

    DUPLICATE_LABEL = "E0122", "duplicate step label",
"Step labels are the stable IDs of steps: they must be unique within a journey.";

    DUPLICATE_OPTION = "E0123", "option given twice",
"A journey has one trigger (`when`), and at most one `audience`, `reenter`, `goal` and
`quiet hours` (it may have several `frequency cap`s); a project has one `contact` schema
and one project-wide `quiet hours`; a score decays at one rate. Merge the two.";

    TYPE_MISMATCH = "E0201", "type mismatch",
"The expression has another type than the place it is used in expects: a segment or an
`if` needs a `bool`, `set contact.field = value` needs the field's type, and so on.";

    OPTIONAL_UNCHECKED = "E0202", "optional value used without a check",
"The value may be unset (its field is declared with `?`). Ordering comparisons,
arithmetic and function arguments need a value: check it first or give a fallback.

    contact.birthday is set and days_since(contact.birthday) > 30
    default(contact.city, \"unknown\")

`==` and `!=` accept optional values: an unset value equals nothing.";

    CURRENCY_MISMATCH = "E0203", "mixing currencies",
"Money amounts in different currencies cannot be compared or added without a conversion.
Amounts without a currency in events take the project's `currency` from `cairn.toml`.";

    BAD_OPERANDS = "E0204", "operator does not apply",
"The operator is not defined for these types: `and`/`or`/`not` take `bool`; `<` and friends
take numbers, money, dates, times, durations and percentages of one kind; `+` and `-`
add numbers, money of one currency, durations, and durations to dates.";

    BAD_ARGUMENTS = "E0205", "wrong arguments",
"The function was called with the wrong number or kind of arguments. See `cairn explain
E0110` for the functions and their arguments.";

    BAD_AGGREGATE = "E0206", "aggregate over a non-numeric field",
"`sum`, `avg`, `min` and `max` take an event field of type `number`, `int`, `money` or
`percent`: `sum(order_completed.total within 365d)`.";

    NOT_A_VARIANT = "E0207", "not a variant of the enum",
"The string is compared with an enum field but is not one of its variants.";

    BAD_DEFAULT = "E0208", "default value does not fit the field",
"A field's default (`timezone timezone = \"UTC\"`) must have the field's type.";

    BAD_VALUE = "E0209", "invalid value",
"The literal is well formed but not valid here: a time zone that is not an IANA name, a
URL that is not http(s), a percentage over 100, a duration of zero.";

    TEMPLATE_VARIABLE = "E0301", "template variable not in scope",
"A template uses a variable the journey sending it cannot provide. Templates see
`contact.<field>`, the trigger's binding (`when cart_updated as cart` gives `cart.<field>`),
bindings of enclosing `wait for ... as NAME`, and the built-ins `unsubscribe_url`,
`preferences_url`, `confirm_url`, `journey`, `step` and `now`. A template sent from two journeys is checked
against both.";

    TEMPLATE_SYNTAX = "E0302", "template syntax error",
"The template text is not valid Jinja (Cairn renders templates with minijinja).";

    TEMPLATE_FILTER = "E0303", "unknown template filter",
"The filter is neither one of minijinja's built-in filters nor one of Cairn's (`money`,
`date`).";

    UNSUBSCRIBE_LINK = "E0304", "marketing email without unsubscribe link",
"Every marketing email must let the reader unsubscribe: put `{{ unsubscribe_url }}` in the
html part. Cairn also sends the RFC 8058 `List-Unsubscribe` headers. Transactional
templates (`template NAME email transactional`) are exempt.";

    TEMPLATE_PARTS = "E0305", "template is missing a part",
"Each channel needs its parts: email needs `subject` and `html` (and may have `text` and
`preheader`), sms needs `text`, push needs `title` and `body`. Unknown parts are errors.";

    TEMPLATE_FILE = "E0306", "template file not found",
"`html file \"...\"` names a file relative to the project root; the file does not exist.";

    CHANNEL_MISMATCH = "E0307", "template is for another channel",
"`send sms X` needs an sms template, `send email X` an email template, and so on.";

    NO_PHONE = "E0401", "sms needs a phone field",
"To send SMS the contact schema needs a field of type `phone`.";

    NO_EMAIL = "E0402", "email needs an email field",
"To send email the contact schema needs a field of type `email`.";

    NO_PUSH_TOKEN = "E0403", "push needs a push token",
"To send push notifications the contact schema needs a `push_token string?` field.";

    NO_CONSENT = "E0404", "marketing send without a consent",
"Marketing messages need the contact's consent for their channel, checked at dispatch
time. Declare it: `consent email_marketing for email`. Messages that need no consent (an
order confirmation, a password reset) are declared `transactional`.";

    UNREACHABLE = "E0501", "unreachable step",
"The step comes after `goal` or `exit` in the same block, so no run can reach it.";

    BAD_RETRY = "E0502", "retry does not loop back",
"`retry LABEL at most N times` jumps back to an earlier labelled step, at most N times
(1 to 100). Loops are only ever bounded ones: a retry to a later step, to a step in
another branch that does not enclose it, or without a bound is an error.";

    SPLIT_WEIGHTS = "E0503", "split weights do not add up to 100%",
"The arms of a `split` share all contacts: their percentages must add up to exactly 100%.
Arms are assigned deterministically from the contact, journey and split.";

    WAIT_FOR_TIMEOUT = "E0504", "`wait for` without a timeout",
"Every `wait for EVENT` needs `within DURATION` and a `timeout { ... }` branch, so no run
waits forever:

    wait for service_booked where vin == car.vin within 14d {
      send email tyre_discount
    } timeout {
      retry remind at most 2 times
    }";

    NO_TRIGGER = "E0505", "journey without a trigger",
"A journey starts with `when ...`: an event, `anniversary of contact.FIELD at 09:00`,
`no EVENT for 7d`, `enters segment S`, `leaves segment S`, `tag T added`, `page \"/p*\"
visited`, `contact created` or `consent C granted`.";

    NOT_A_SEND = "E0506", "`opened`/`clicked` of a step that sends nothing",
"`opened(label)` and `clicked(label)` read the tracking of the message a step sent; the
label must be an email or push `send` step that comes before the condition.";

    EMPTY_JOURNEY = "E0507", "journey without steps",
"A journey needs at least one step.";

    SEGMENT_CYCLE = "E0508", "segments refer to each other in a cycle",
"A segment's condition names another segment, which names another, and the chain comes
back to the first: no contact's membership could ever be decided.

    segment engaged { recent_buyer or opened_lately }
    segment recent_buyer { engaged and exists(order_completed within 30d) }   // cycle

Break the cycle by writing one of the conditions out in full.";

    MIGRATE_UNKNOWN_STEP = "E0601", "`migrate` from a step the previous plan does not have",
"`migrate OLD -> NEW` moves the runs in flight at step `OLD` of the deployed plan to step
`NEW` of this one, so `OLD` must be a step ID of the previous plan's journey (the plan
`cairn deploy` fetches from the daemon, `cairn diff` builds from the base revision, or
`cairn build --previous FILE` reads):

    journey cart {
      when cart_updated
      migrate remind_old -> pause   // error: the deployed journey has no `remind_old`
      pause: wait 1d
      send email cart_reminder
    }

Check the spelling against `cairn status` (the steps where runs wait) or the previous
plan. A step without a label has a derived ID (`remind.wait#1`, as `cairn diff` and
`cairn status` print it): write it quoted, `migrate \"remind.wait#1\" -> pause`. A new
journey has no runs in flight: remove the migration.";

    MIGRATE_STEP_STILL_THERE = "E0602", "`migrate` from a step that still exists",
"Runs in flight at a step the new plan still has stay at it (they move to the new
version at the same step ID), so a migration from it would never apply. Migrate only
from a step the new plan removes or renames:

    journey cart {
      when cart_updated
      migrate reminder -> pause     // error: `reminder` is still a step
      pause: wait 1d
      reminder: send email cart_reminder
    }";

    MIGRATE_TARGET_CANNOT_HOLD = "E0603", "`migrate` to a step a run cannot wait at",
"A migrated run enters its new step at the deploy instant and waits there, so `NEW` must
be a step a run can wait at: `wait 2d`, `wait 6 months`, `wait until 09:00 local` or
`wait for EVENT ... within ...`. The wait starts afresh from the deploy.

    migrate old_remind -> remind    // error: `remind` is a send
    pause: wait 1d                  // migrate to `pause` instead
    remind: send email cart_reminder";

    NO_AUDIENCE = "W0001", "journey without an audience",
"The journey admits every contact that triggers it. Usually that is a mistake: say whom it
is for, `audience consented(email_marketing)` or `audience vip`, or `audience true` to
mean everyone.";

    WAIT_PAST_GOAL = "W0002", "wait longer than the goal window",
"A wait is longer than the journey's `goal ... within` window, so the steps after it run
only for contacts who can no longer convert.";

    NEVER_TRUE = "W0003", "condition can never be true",
"The segment or condition is false for every contact (for example `count(...) < 0`, or a
condition and its negation joined with `and`).";

    CONSENT_NOT_REQUIRED = "W0004", "audience checks no consent",
"The journey sends marketing messages, but neither its audience nor the branch around the
send checks any consent. Consent is checked at dispatch time, so those sends are skipped
for contacts without it; add `consented(...)` to the audience to keep such contacts out of
the journey altogether. A journey whose audience requires one consent (email) and that
also sends on another channel (sms) is not warned: skipping the second send for
contacts without that consent is the documented behaviour.";

    EMPTY_WINDOW = "W0005", "empty quiet hours",
"Quiet hours from a time to the same time cover nothing.";

    UNUSED = "W0006", "declared but never used",
"A template or segment is declared but nothing refers to it.";
}
