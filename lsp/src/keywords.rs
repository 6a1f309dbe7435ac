//! The words of the language, for completion, semantic tokens and the editor grammars.

/// Every keyword of the grammar (the `K_*` rules of `cairn.pest`). Most are contextual:
/// `email` is a channel after `send` and a field name in the contact schema.
pub const KEYWORDS: &[&str] = &[
    "add",
    "added",
    "after",
    "all",
    "always",
    "and",
    "anniversary",
    "arm",
    "as",
    "at",
    "audience",
    "best",
    "cap",
    "channel",
    "clicks",
    "consent",
    "contact",
    "created",
    "decay",
    "defer",
    "drain",
    "else",
    "email",
    "enter",
    "enters",
    "enum",
    "event",
    "every",
    "exit",
    "expect",
    "false",
    "file",
    "for",
    "frequency",
    "from",
    "goal",
    "granted",
    "grants",
    "hours",
    "if",
    "in",
    "is",
    "journey",
    "leaves",
    "list",
    "local",
    "marketing",
    "migrate",
    "most",
    "never",
    "no",
    "not",
    "nothing",
    "of",
    "on",
    "opens",
    "or",
    "page",
    "per",
    "post",
    "preferred",
    "push",
    "quiet",
    "reason",
    "record",
    "reenter",
    "remove",
    "removed",
    "retry",
    "score",
    "segment",
    "send",
    "sends",
    "set",
    "skip",
    "sms",
    "split",
    "tag",
    "template",
    "test",
    "time",
    "timeout",
    "times",
    "to",
    "transactional",
    "true",
    "unless",
    "unsubscribes",
    "until",
    "updates",
    "via",
    "visited",
    "visits",
    "wait",
    "when",
    "where",
    "within",
];

/// Keywords that start a top-level item.
pub const ITEM_KEYWORDS: &[(&str, &str)] = &[
    ("contact", "contact {\n  $0\n}"),
    ("consent", "consent ${1:name} for ${2|email,sms,push|}"),
    ("record", "record ${1:name} { $0 }"),
    ("event", "event ${1:name} { $0 }"),
    ("tag", "tag ${1:name}"),
    ("segment", "segment ${1:name} {\n  $0\n}"),
    ("score", "score ${1:name} {\n  +${2:5} on ${3:event}\n}"),
    (
        "template",
        "template ${1:name} ${2|email,sms,push|} {\n  $0\n}",
    ),
    ("quiet hours", "quiet hours ${1:21:00}..${2:08:00} local"),
    (
        "frequency cap",
        "frequency cap ${1:3} marketing per ${2:7d}",
    ),
    (
        "journey",
        "journey ${1:name} {\n  when ${2:event}\n  audience ${3:true}\n\n  $0\n}",
    ),
    ("test", "test \"${1:what happens}\" {\n  $0\n}"),
];

/// What can start a line inside a journey: options and steps.
pub const JOURNEY_STATEMENTS: &[(&str, &str)] = &[
    ("when", "when ${1:event}"),
    ("audience", "audience ${1:consented(${2:email_marketing})}"),
    ("reenter", "reenter ${1|after 7d,always,never|}"),
    ("goal", "goal ${1:event} within ${2:7d}"),
    ("exit when", "exit when ${1:event}"),
    ("quiet hours", "quiet hours ${1:21:00}..${2:08:00} local"),
    (
        "frequency cap",
        "frequency cap ${1:3} marketing per ${2:7d}",
    ),
    ("migrate", "migrate ${1:old_step} -> ${2:new_step}"),
    ("drain", "drain"),
    ("send email", "send email ${1:template}"),
    ("send sms", "send sms ${1:template}"),
    ("send push", "send push ${1:template}"),
    (
        "send via preferred channel",
        "send via preferred channel [${1:templates}]",
    ),
    ("post", "post \"${1:https://}\" { $0 }"),
    ("wait", "wait ${1:1d}"),
    ("wait until", "wait until ${1:09:00} local"),
    (
        "wait for",
        "wait for ${1:event} within ${2:7d} {\n  $0\n} timeout {\n}",
    ),
    ("if", "if ${1:condition} {\n  $0\n}"),
    ("split", "split {\n  50% ${1:a}: $0\n  50% ${2:b}: \n}"),
    ("tag add", "tag add ${1:tag}"),
    ("tag remove", "tag remove ${1:tag}"),
    ("score", "score ${1:score} +${2:10}"),
    ("set", "set contact.${1:field} = ${2:value}"),
    ("retry", "retry ${1:label} at most ${2:2} times"),
    ("goal", "goal"),
    ("exit", "exit"),
];

/// What can start a line inside a test.
pub const TEST_STATEMENTS: &[(&str, &str)] = &[
    (
        "contact",
        "contact ${1:ana} { email: \"${2:ana@example.com}\" }",
    ),
    ("at", "at ${1:2026-03-01T10:00Z} ${2:ana} sends ${3:event}"),
    ("expect send", "expect send email ${1:template} to ${2:ana}"),
    (
        "expect no send",
        "expect no send email ${1:template} to ${2:ana}",
    ),
    ("expect goal", "expect goal ${1:journey} for ${2:ana}"),
    ("expect exit", "expect exit ${1:journey} for ${2:ana}"),
    ("expect enter", "expect enter ${1:journey} for ${2:ana}"),
    ("expect tag", "expect tag ${1:tag} added for ${2:ana}"),
    (
        "expect score",
        "expect score ${1:score} for ${2:ana} = ${3:10}",
    ),
    ("expect split", "expect split ${1:step} for ${2:ana}"),
    ("expect skip", "expect skip ${1:step} for ${2:ana}"),
    ("expect defer", "expect defer ${1:step} for ${2:ana}"),
    (
        "expect nothing",
        "expect nothing for ${1:ana} until ${2:2026-03-02T00:00Z}",
    ),
];

/// What can follow `when`.
pub const TRIGGER_KEYWORDS: &[(&str, &str)] = &[
    (
        "anniversary of",
        "anniversary of contact.${1:birthday} at ${2:09:00} local",
    ),
    ("no", "no ${1:event} for ${2:7d}"),
    ("enters segment", "enters segment ${1:segment}"),
    ("leaves segment", "leaves segment ${1:segment}"),
    ("tag", "tag ${1:tag} added"),
    ("page", "page \"${1:/pricing*}\" visited"),
    ("contact created", "contact created"),
    ("consent", "consent ${1:consent} granted"),
];

/// Durations offered where one is expected.
pub const DURATIONS: &[(&str, &str)] = &[
    ("30m", "30 minutes"),
    ("2h", "2 hours"),
    ("1d", "1 day"),
    ("2d", "2 days"),
    ("7d", "7 days"),
    ("14d", "14 days"),
    ("30d", "30 days"),
    ("2w", "2 weeks"),
    ("6 months", "6 calendar months"),
    ("1 year", "1 calendar year"),
];

/// Template parts by channel.
pub fn template_parts(channel: &str) -> &'static [&'static str] {
    match channel {
        "email" => &["subject", "html", "text", "preheader"],
        "sms" => &["text"],
        "push" => &["title", "body", "url"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::KEYWORDS;

    #[test]
    fn keywords_are_the_grammars() {
        let grammar = include_str!("../../grammar/src/cairn.pest");
        let mut from_grammar: Vec<&str> = grammar
            .lines()
            .filter(|l| l.starts_with("K_"))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        from_grammar.sort_unstable();
        let mut ours = KEYWORDS.to_vec();
        ours.sort_unstable();
        assert_eq!(ours, from_grammar);
    }
}
