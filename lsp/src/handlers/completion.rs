//! Completion by context. The text around the cursor is usually half-typed and does not
//! parse, so the context comes from the forgiving tokenizer: the words before the cursor
//! on its line, the brackets still open, and the item the cursor is in. The names come
//! from the project's schema, which the last edit that parsed left in the database.

use super::hover::FUNCTION_DOCS;
use super::navigation::schema;
use crate::keywords::{
    DURATIONS, ITEM_KEYWORDS, JOURNEY_STATEMENTS, TEST_STATEMENTS, TRIGGER_KEYWORDS, template_parts,
};
use crate::lex::{Token, TokenKind, tokens};
use crate::server::{RequestResult, Snapshot};
use cairn_compiler::schema::{BUILTIN_TYPE_NAMES, Schema, Ty};
use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionParams, CompletionResponse, Documentation,
    InsertTextFormat, MarkupContent, MarkupKind,
};

/// Most items returned: the client filters further as the person types.
const MAX_ITEMS: usize = 500;

pub fn completion(
    snapshot: &Snapshot,
    params: CompletionParams,
) -> RequestResult<Option<CompletionResponse>> {
    let position = params.text_document_position;
    let doc = snapshot.doc(&position.text_document.uri)?;
    let offset = doc.text.offset(position.position);
    let text = &doc.text.text;
    let tree = &cairn_compiler::db::parse_file(&snapshot.db, doc.file).tree;
    let item = tree.items.iter().rev().find(|i| i.span.start <= offset);
    let item_start = item.map_or(0, |i| i.span.start);
    let item_end = item.map_or(text.len(), |i| i.span.end.max(offset));
    let item_text = text.get(item_start..item_end).unwrap_or("");
    let context = Context::new(item_text, offset - item_start);
    let schema = schema(snapshot, &doc);
    let mut items = context.items(&schema);
    let partial = context.partial.to_lowercase();
    items.retain(|i| fuzzy(&partial, &i.label.to_lowercase()));
    items.truncate(MAX_ITEMS);
    Ok(Some(CompletionResponse::Array(items)))
}

fn fuzzy(query: &str, name: &str) -> bool {
    let mut chars = name.chars();
    query.chars().all(|q| chars.any(|c| c == q))
}

/// What surrounds the cursor.
struct Context<'t> {
    text: &'t str,
    /// Every token of the item up to the cursor, the word being typed left out.
    before: Vec<Token>,
    /// The tokens of `before` on the cursor's line.
    line: Vec<Token>,
    /// What has been typed of the current word.
    partial: &'t str,
    /// Tokens of the whole item, for labels and bindings.
    item: Vec<Token>,
    /// The cursor is in a comment or an unclosed string.
    quiet: bool,
}

impl<'t> Context<'t> {
    fn new(item_text: &'t str, cursor: usize) -> Self {
        let cursor = cursor.min(item_text.len());
        let item = tokens(item_text);
        let mut before: Vec<Token> = item
            .iter()
            .copied()
            .filter(|t| t.span.start < cursor)
            .collect();
        let mut partial = "";
        let mut quiet = false;
        if let Some(last) = before.last().copied() {
            let touches = last.span.end >= cursor;
            match last.kind {
                TokenKind::Comment | TokenKind::String if last.span.end > cursor => quiet = true,
                TokenKind::Comment => {
                    let line_of_cursor = item_text[..cursor].rfind('\n').map_or(0, |i| i + 1);
                    quiet = last.span.start >= line_of_cursor;
                }
                TokenKind::String => {
                    let s = last.text(item_text);
                    let closed = s.len() >= 2 && s.ends_with('"');
                    quiet = !closed && touches;
                }
                TokenKind::Word | TokenKind::Number if touches => {
                    partial = item_text.get(last.span.start..cursor).unwrap_or("");
                    before.pop();
                }
                _ => {}
            }
        }
        let line_start = item_text[..cursor].rfind('\n').map_or(0, |i| i + 1);
        let line = before
            .iter()
            .copied()
            .filter(|t| t.span.start >= line_start && t.kind != TokenKind::Comment)
            .collect();
        Self {
            text: item_text,
            before,
            line,
            partial,
            item,
            quiet,
        }
    }

    fn word(&self, t: &Token) -> &'t str {
        t.text(self.text)
    }

    /// The words of the line before the cursor, newest first.
    fn last_words(&self) -> Vec<&'t str> {
        self.line.iter().rev().map(|t| self.word(t)).collect()
    }

    fn item_keyword(&self) -> &'t str {
        self.item
            .iter()
            .find(|t| t.kind == TokenKind::Word)
            .map_or("", |t| self.word(t))
    }

    fn depth(&self) -> i32 {
        self.before
            .iter()
            .map(|t| match self.word(t) {
                "{" => 1,
                "}" => -1,
                _ => 0,
            })
            .sum()
    }

    /// `(name, event)` for every `EVENT as NAME` of the item.
    fn bindings(&self) -> Vec<(&'t str, &'t str)> {
        self.item
            .windows(3)
            .filter(|w| self.word(&w[1]) == "as" && w[0].kind == TokenKind::Word)
            .filter(|w| w[2].kind == TokenKind::Word)
            .map(|w| (self.word(&w[2]), self.word(&w[0])))
            .collect()
    }

    /// Step labels of the item: a word first on its line and followed by `:`.
    fn labels(&self) -> Vec<&'t str> {
        let mut out = Vec::new();
        for (i, t) in self.item.iter().enumerate() {
            let first_on_line = self.text[..t.span.start]
                .rfind('\n')
                .is_none_or(|nl| self.text[nl + 1..t.span.start].trim().is_empty());
            if t.kind == TokenKind::Word
                && first_on_line
                && self.item.get(i + 1).is_some_and(|n| self.word(n) == ":")
            {
                out.push(self.word(t));
            }
        }
        out
    }

    /// The function whose parenthesis is open at the cursor, with the tokens after it.
    fn open_call(&self) -> Option<(&'t str, &[Token])> {
        let mut depth = 0;
        for (i, t) in self.line.iter().enumerate().rev() {
            match self.word(t) {
                ")" => depth += 1,
                "(" if depth > 0 => depth -= 1,
                "(" => {
                    let function = i
                        .checked_sub(1)
                        .and_then(|j| self.line.get(j))
                        .filter(|f| f.kind == TokenKind::Word)
                        .map(|f| self.word(f))?;
                    return Some((function, &self.line[i + 1..]));
                }
                _ => {}
            }
        }
        None
    }

    fn items(&self, schema: &Schema) -> Vec<CompletionItem> {
        if self.quiet {
            return Vec::new();
        }
        if let Some(items) = self.member_access(schema) {
            return items;
        }
        let words = self.last_words();
        let w = |i: usize| words.get(i).copied().unwrap_or("");
        if let Some((function, inside)) = self.open_call() {
            let has_where = inside.iter().any(|t| self.word(t) == "where");
            match function {
                "consented" => return consents(schema),
                "has_tag" => return tags(schema),
                "opened" | "clicked" => return labels(&self.labels()),
                "exists" | "count" | "sum" | "avg" | "min" | "max" | "last" if !has_where => {
                    return events(schema);
                }
                "exists" | "count" | "sum" | "avg" | "min" | "max" | "last" => {
                    let event = inside.first().map(|t| self.word(t)).unwrap_or("");
                    return self.where_items(schema, event);
                }
                _ => {}
            }
        }
        // After keywords that name one kind of thing.
        if w(1) == "send" && matches!(w(0), "email" | "sms" | "push") {
            return templates(schema, Some(w(0)));
        }
        if self.line.iter().any(|t| self.word(t) == "expect")
            && let Some(i) = words.iter().position(|x| *x == "send")
            && i >= 1
            && matches!(words[i - 1], "email" | "sms" | "push")
            && !words[..i - 1].contains(&"to")
        {
            return templates(schema, Some(words[i - 1]));
        }
        if w(0) == "send" {
            return ["email", "sms", "push", "via preferred channel"]
                .iter()
                .map(|k| keyword(k, None))
                .collect();
        }
        if words.contains(&"preferred") && words.contains(&"[") && !words.contains(&"]") {
            return templates(schema, None);
        }
        if matches!(w(0), "wait" | "within" | "every" | "after" | "per")
            || (w(0) == "for" && w(2) == "no")
        {
            let mut items = durations();
            if w(0) == "wait" {
                items.push(keyword("for", None));
                items.push(keyword("until", None));
            }
            return items;
        }
        match (w(1), w(0)) {
            (_, "when") if self.item_keyword() == "journey" && words.len() == 1 => {
                let mut items = events(schema);
                items.extend(
                    TRIGGER_KEYWORDS
                        .iter()
                        .map(|(label, snippet)| snippet_item(label, snippet)),
                );
                return items;
            }
            ("when", "tag") | ("tag", "add" | "remove") | ("expect" | "no", "tag") => {
                return tags(schema);
            }
            ("enters" | "leaves", "segment") => return segments(schema),
            ("when", "consent") | (_, "grants") => return consents(schema),
            ("wait", "for") | ("exit", "when") | ("when", "no") | (_, "unless" | "sends") => {
                return events(schema);
            }
            (_, "goal") if words.len() == 1 && self.item_keyword() == "journey" => {
                return events(schema);
            }
            (_, "on") if self.item_keyword() == "score" => return events(schema),
            (_, "score") if self.item_keyword() == "journey" || w(1) == "expect" => {
                return scores(schema);
            }
            (_, "retry" | "opens" | "clicks" | "migrate" | ">")
            | ("expect" | "no", "split" | "skip" | "defer") => return labels(&self.labels()),
            ("expect" | "no", "goal" | "exit" | "enter") => return journeys(schema),
            (_, "enters" | "leaves") => return vec![keyword("segment", None)],
            _ => {}
        }
        if let Some(i) = words.iter().position(|x| *x == "where") {
            // `EVENT where`, `EVENT as b where`, `on EVENT where`.
            let event = match (words.get(i + 1), words.get(i + 2)) {
                (Some(b), Some(&"as")) => words.get(i + 3).copied().unwrap_or(b),
                (Some(e), _) => e,
                _ => "",
            };
            return self.where_items(schema, event);
        }
        if self.line.is_empty() {
            return self.statement_start(schema);
        }
        if matches!(self.item_keyword(), "contact" | "record" | "event")
            && self.depth() >= 1
            && self.line.len() == 1
        {
            return types(schema);
        }
        self.expression_items(schema)
    }

    /// `contact.`, `cart.`, `order_completed.`, `contact.address.`: the fields.
    fn member_access(&self, schema: &Schema) -> Option<Vec<CompletionItem>> {
        let last = self.before.last()?;
        if self.word(last) != "." {
            return None;
        }
        // The dotted chain before the dot, oldest first.
        let mut chain = Vec::new();
        let mut i = self.before.len() - 1;
        loop {
            let word = i.checked_sub(1).and_then(|j| self.before.get(j))?;
            if word.kind != TokenKind::Word {
                return Some(Vec::new());
            }
            chain.push(self.word(word));
            match i.checked_sub(2).and_then(|j| self.before.get(j)) {
                Some(dot) if self.word(dot) == "." && dot.span.end == word.span.start => i -= 2,
                _ => break,
            }
        }
        chain.reverse();
        let bindings = self.bindings();
        let first = chain.first().copied().unwrap_or("");
        let mut ty = if first == "contact" {
            Ty::Contact
        } else if let Some((_, event)) = bindings.iter().rev().find(|(b, _)| *b == first) {
            Ty::Event((*event).to_string())
        } else if schema.events.contains_key(first) {
            Ty::Event(first.to_string())
        } else {
            return Some(Vec::new());
        };
        for name in &chain[1..] {
            match schema.member(&ty, name) {
                Some(next) => ty = next,
                None => return Some(Vec::new()),
            }
        }
        Some(fields(schema, &ty))
    }

    /// Inside a `where` on `event`: its fields are bare names.
    fn where_items(&self, schema: &Schema, event: &str) -> Vec<CompletionItem> {
        let mut items = fields(schema, &Ty::Event(event.to_string()));
        items.extend(self.expression_items(schema));
        items
    }

    fn expression_items(&self, schema: &Schema) -> Vec<CompletionItem> {
        let mut items = vec![item(
            "contact",
            CompletionItemKind::VARIABLE,
            Some("the contact".to_string()),
        )];
        for (binding, event) in self.bindings() {
            items.push(item(
                binding,
                CompletionItemKind::VARIABLE,
                Some(format!("event {event}")),
            ));
        }
        items.extend(segments(schema));
        items.extend(scores(schema));
        items.extend(functions());
        for k in ["not", "and", "or", "true", "false", "is set", "is not set"] {
            items.push(keyword(k, None));
        }
        items
    }

    fn statement_start(&self, schema: &Schema) -> Vec<CompletionItem> {
        if self.depth() <= 0 {
            return ITEM_KEYWORDS
                .iter()
                .map(|(label, snippet)| snippet_item(label, snippet))
                .collect();
        }
        match self.item_keyword() {
            "journey" => JOURNEY_STATEMENTS
                .iter()
                .map(|(label, snippet)| snippet_item(label, snippet))
                .collect(),
            "test" => TEST_STATEMENTS
                .iter()
                .map(|(label, snippet)| snippet_item(label, snippet))
                .collect(),
            "template" => {
                let channel = self
                    .item
                    .iter()
                    .filter(|t| t.kind == TokenKind::Word)
                    .nth(2)
                    .map_or("", |t| self.word(t));
                template_parts(channel)
                    .iter()
                    .map(|p| keyword(p, Some("template part")))
                    .collect()
            }
            "score" => vec![
                snippet_item("on", "+${1:5} on ${2:event}"),
                snippet_item("decay", "decay ${1:10}% every ${2:30d}"),
            ],
            "segment" => self.expression_items(schema),
            _ => Vec::new(),
        }
    }
}

fn item(label: &str, kind: CompletionItemKind, detail: Option<String>) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail,
        ..CompletionItem::default()
    }
}

fn keyword(label: &str, detail: Option<&str>) -> CompletionItem {
    item(
        label,
        CompletionItemKind::KEYWORD,
        detail.map(str::to_string),
    )
}

fn snippet_item(label: &str, snippet: &str) -> CompletionItem {
    CompletionItem {
        insert_text: Some(snippet.to_string()),
        insert_text_format: Some(InsertTextFormat::SNIPPET),
        ..item(label, CompletionItemKind::KEYWORD, None)
    }
}

fn events(schema: &Schema) -> Vec<CompletionItem> {
    schema
        .events
        .iter()
        .map(|(name, info)| {
            let detail = if info.builtin {
                "built-in event"
            } else {
                "event"
            };
            item(name, CompletionItemKind::EVENT, Some(detail.to_string()))
        })
        .collect()
}

fn fields(schema: &Schema, ty: &Ty) -> Vec<CompletionItem> {
    let map = match ty.required() {
        Ty::Contact => Some(&schema.contact),
        Ty::Event(e) => schema.events.get(e).map(|e| &e.fields),
        Ty::Record(r) => schema.records.get(r),
        _ => None,
    };
    map.into_iter()
        .flatten()
        .map(|(name, ty)| item(name, CompletionItemKind::FIELD, Some(ty.to_string())))
        .collect()
}

fn templates(schema: &Schema, channel: Option<&str>) -> Vec<CompletionItem> {
    schema
        .templates
        .iter()
        .filter(|(_, info)| channel.is_none_or(|c| info.channel.is_none_or(|ch| ch.as_str() == c)))
        .map(|(name, info)| {
            let channel = info.channel.map_or("?", |c| c.as_str());
            let kind = if info.transactional {
                "transactional"
            } else {
                "marketing"
            };
            item(
                name,
                CompletionItemKind::CLASS,
                Some(format!("{channel} template ({kind})")),
            )
        })
        .collect()
}

fn consents(schema: &Schema) -> Vec<CompletionItem> {
    schema
        .consents
        .iter()
        .map(|(name, channel)| {
            item(
                name,
                CompletionItemKind::ENUM_MEMBER,
                Some(format!("consent for {channel}")),
            )
        })
        .collect()
}

fn tags(schema: &Schema) -> Vec<CompletionItem> {
    schema
        .tags
        .iter()
        .map(|t| item(t, CompletionItemKind::ENUM_MEMBER, Some("tag".to_string())))
        .collect()
}

fn segments(schema: &Schema) -> Vec<CompletionItem> {
    schema
        .segments
        .iter()
        .map(|s| item(s, CompletionItemKind::VARIABLE, Some("segment".to_string())))
        .collect()
}

fn scores(schema: &Schema) -> Vec<CompletionItem> {
    schema
        .scores
        .iter()
        .map(|s| item(s, CompletionItemKind::VARIABLE, Some("score".to_string())))
        .collect()
}

fn journeys(schema: &Schema) -> Vec<CompletionItem> {
    schema
        .journeys
        .iter()
        .map(|j| item(j, CompletionItemKind::MODULE, Some("journey".to_string())))
        .collect()
}

fn labels(labels: &[&str]) -> Vec<CompletionItem> {
    labels
        .iter()
        .map(|l| item(l, CompletionItemKind::REFERENCE, Some("step".to_string())))
        .collect()
}

fn types(schema: &Schema) -> Vec<CompletionItem> {
    BUILTIN_TYPE_NAMES
        .iter()
        .map(|t| {
            item(
                t,
                CompletionItemKind::TYPE_PARAMETER,
                Some("type".to_string()),
            )
        })
        .chain(
            schema
                .records
                .keys()
                .map(|r| item(r, CompletionItemKind::STRUCT, Some("record".to_string()))),
        )
        .collect()
}

fn durations() -> Vec<CompletionItem> {
    DURATIONS
        .iter()
        .map(|(d, meaning)| item(d, CompletionItemKind::VALUE, Some((*meaning).to_string())))
        .collect()
}

fn functions() -> Vec<CompletionItem> {
    FUNCTION_DOCS
        .iter()
        .map(|(name, signature, description)| CompletionItem {
            label: (*name).to_string(),
            kind: Some(CompletionItemKind::FUNCTION),
            detail: Some((*signature).to_string()),
            documentation: Some(Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: (*description).to_string(),
            })),
            ..CompletionItem::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_compiler::db::{Database, ProjectInput, SourceFile, project_schema};
    use std::collections::BTreeMap;

    const PROJECT: &str = "contact { email email?, city string? }\n\
        consent email_marketing for email\n\
        tag vip\n\
        segment big { count(order_completed) > 1 }\n\
        event order_completed { total money, sku string }\n\
        template welcome email { subject \"x\" }\n\
        template ping sms { text \"x\" }\n";

    fn labels_at(source: &str) -> Vec<String> {
        let cursor = source.find('|').expect("a cursor mark");
        let text = source.replace('|', "");
        let db = Database::default();
        let file = SourceFile::new(&db, "a.cairn".into(), PROJECT.to_string());
        let project = ProjectInput::new(&db, vec![file], BTreeMap::new(), None);
        let schema = project_schema(&db, project);
        let context = Context::new(&text, cursor);
        let mut items = context.items(schema);
        let partial = context.partial.to_lowercase();
        items.retain(|i| fuzzy(&partial, &i.label.to_lowercase()));
        items.into_iter().map(|i| i.label).collect()
    }

    #[test]
    fn completes_by_context() {
        assert_eq!(labels_at("journey j {\n  send email |"), vec!["welcome"]);
        assert_eq!(labels_at("journey j {\n  send sms p|"), vec!["ping"]);
        assert_eq!(
            labels_at("journey j {\n  audience consented(|"),
            vec!["email_marketing"]
        );
        let fields = labels_at("journey j {\n  when order_completed where |");
        assert!(fields.contains(&"total".to_string()), "{fields:?}");
        assert!(fields.contains(&"consented".to_string()), "{fields:?}");
        let members = labels_at("journey j {\n  when order_completed as o\n  if o.|");
        assert_eq!(members, vec!["sku", "total"]);
        let contact = labels_at("segment s { contact.|");
        assert!(contact.contains(&"city".to_string()), "{contact:?}");
        let waits = labels_at("journey j {\n  wait |");
        assert!(waits.contains(&"1d".to_string()), "{waits:?}");
        let steps = labels_at("journey j {\n  when order_completed\n  |");
        assert!(steps.contains(&"send email".to_string()), "{steps:?}");
        let top = labels_at("tag a\n|");
        assert!(top.contains(&"journey".to_string()), "{top:?}");
        let retry = labels_at("journey j {\n  remind: send email welcome\n  retry |");
        assert_eq!(retry, vec!["remind"]);
        assert!(labels_at("journey j { // send email |").is_empty());
        assert!(labels_at("journey j { send email \"|").is_empty());
    }
}
