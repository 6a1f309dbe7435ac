//! Semantic tokens (names coloured by what they mean) and folding ranges. Both work
//! from the forgiving tokenizer, so half-typed text still gets them.

use crate::index::Symbol;
use crate::keywords::KEYWORDS;
use crate::lex::{TokenKind, tokens};
use crate::position::Text;
use crate::server::{RequestResult, Snapshot};
use lsp_types::{
    FoldingRange, FoldingRangeKind, FoldingRangeParams, SemanticToken, SemanticTokenModifier,
    SemanticTokenType, SemanticTokens, SemanticTokensLegend, SemanticTokensParams,
    SemanticTokensResult,
};
use std::collections::HashMap;

const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::KEYWORD,
    SemanticTokenType::COMMENT,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::EVENT,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::TYPE,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::CLASS,
    SemanticTokenType::ENUM_MEMBER,
    SemanticTokenType::NAMESPACE,
    SemanticTokenType::DECORATOR,
    SemanticTokenType::PARAMETER,
];

const MODIFIERS: &[SemanticTokenModifier] = &[
    SemanticTokenModifier::DECLARATION,
    SemanticTokenModifier::DEFAULT_LIBRARY,
];

fn type_index(t: &SemanticTokenType) -> u32 {
    TYPES
        .iter()
        .position(|x| x == t)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(0)
}

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: MODIFIERS.to_vec(),
    }
}

fn symbol_type(symbol: &Symbol) -> SemanticTokenType {
    match symbol {
        Symbol::Event(_) => SemanticTokenType::EVENT,
        Symbol::EventField { .. } | Symbol::ContactField(_) | Symbol::RecordField { .. } => {
            SemanticTokenType::PROPERTY
        }
        Symbol::Record(_) | Symbol::Type(_) => SemanticTokenType::TYPE,
        Symbol::Segment(_) | Symbol::Score(_) | Symbol::TestContact { .. } => {
            SemanticTokenType::VARIABLE
        }
        Symbol::Template(_) => SemanticTokenType::CLASS,
        Symbol::Consent(_) | Symbol::Tag(_) => SemanticTokenType::ENUM_MEMBER,
        Symbol::Journey(_) => SemanticTokenType::NAMESPACE,
        Symbol::Label { .. } => SemanticTokenType::DECORATOR,
        Symbol::Binding { .. } => SemanticTokenType::PARAMETER,
        Symbol::Function(_) => SemanticTokenType::FUNCTION,
    }
}

pub fn semantic_tokens(
    snapshot: &Snapshot,
    params: SemanticTokensParams,
) -> RequestResult<Option<SemanticTokensResult>> {
    let doc = snapshot.doc(&params.text_document.uri)?;
    let occurrences: HashMap<usize, &crate::index::Occurrence> = snapshot
        .occurrences(&doc)
        .iter()
        .map(|o| (o.span.start, o))
        .collect();
    let text = &doc.text;
    let mut builder = Builder::default();
    for token in tokens(&text.text) {
        let (kind, modifiers) = match token.kind {
            TokenKind::Comment => (SemanticTokenType::COMMENT, 0),
            TokenKind::String => (SemanticTokenType::STRING, 0),
            TokenKind::Number => (SemanticTokenType::NUMBER, 0),
            TokenKind::Punct => continue,
            TokenKind::Word => match occurrences.get(&token.span.start) {
                Some(o) if o.span == token.span => {
                    let mut modifiers = 0;
                    if o.def {
                        modifiers |= 1;
                    }
                    if matches!(o.symbol, Symbol::Function(_) | Symbol::Type(_)) {
                        modifiers |= 2;
                    }
                    (symbol_type(&o.symbol), modifiers)
                }
                _ if KEYWORDS.contains(&token.text(&text.text)) => (SemanticTokenType::KEYWORD, 0),
                _ => continue,
            },
        };
        builder.push(text, token.span, type_index(&kind), modifiers);
    }
    Ok(Some(SemanticTokensResult::Tokens(SemanticTokens {
        result_id: None,
        data: builder.data,
    })))
}

#[derive(Default)]
struct Builder {
    data: Vec<SemanticToken>,
    line: u32,
    start: u32,
}

impl Builder {
    /// Adds a token, one piece per line: not every client takes multi-line tokens.
    fn push(&mut self, text: &Text, span: cairn_grammar::ast::Span, kind: u32, modifiers: u32) {
        let mut from = span.start;
        while from < span.end {
            let line = text.line_of(from);
            let line_end = text.line_start(line + 1).min(span.end).max(from);
            let piece_end = if text.text.as_bytes().get(line_end.saturating_sub(1)) == Some(&b'\n')
            {
                line_end - 1
            } else {
                line_end
            };
            let a = text.position(from);
            let b = text.position(piece_end);
            if b.character > a.character {
                let delta_line = a.line - self.line;
                let delta_start = if delta_line == 0 {
                    a.character - self.start
                } else {
                    a.character
                };
                self.data.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length: b.character - a.character,
                    token_type: kind,
                    token_modifiers_bitset: modifiers,
                });
                self.line = a.line;
                self.start = a.character;
            }
            if line_end <= from {
                break;
            }
            from = line_end;
        }
    }
}

pub fn folding(
    snapshot: &Snapshot,
    params: FoldingRangeParams,
) -> RequestResult<Option<Vec<FoldingRange>>> {
    let doc = snapshot.doc(&params.text_document.uri)?;
    let text = &doc.text;
    let mut out = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut comment_run: Option<(usize, usize)> = None;
    let mut last_line_with_code: Option<usize> = None;
    let fold = |start: usize, end: usize, kind: Option<FoldingRangeKind>| FoldingRange {
        start_line: u32::try_from(start).unwrap_or(u32::MAX),
        start_character: None,
        end_line: u32::try_from(end).unwrap_or(u32::MAX),
        end_character: None,
        kind,
        collapsed_text: None,
    };
    for token in tokens(&text.text) {
        let line = text.line_of(token.span.start);
        match token.kind {
            TokenKind::Comment if last_line_with_code != Some(line) => {
                comment_run = match comment_run {
                    Some((start, end)) if end + 1 == line => Some((start, line)),
                    Some((start, end)) => {
                        if end > start {
                            out.push(fold(start, end, Some(FoldingRangeKind::Comment)));
                        }
                        Some((line, line))
                    }
                    None => Some((line, line)),
                };
                continue;
            }
            TokenKind::Punct => match token.text(&text.text) {
                "{" | "[" | "(" => open.push(line),
                "}" | "]" | ")" => {
                    if let Some(start) = open.pop()
                        && line > start + 1
                    {
                        out.push(fold(start, line - 1, Some(FoldingRangeKind::Region)));
                    }
                }
                _ => {}
            },
            TokenKind::String => {
                let end = text.line_of(token.span.end.saturating_sub(1));
                if end > line {
                    out.push(fold(line, end, Some(FoldingRangeKind::Region)));
                }
            }
            _ => {}
        }
        last_line_with_code = Some(text.line_of(token.span.end.saturating_sub(1)));
    }
    if let Some((start, end)) = comment_run
        && end > start
    {
        out.push(fold(start, end, Some(FoldingRangeKind::Comment)));
    }
    out.sort_by_key(|f| (f.start_line, f.end_line));
    Ok(Some(out))
}
