//! A forgiving tokenizer for editor features that must work on half-typed text:
//! completion context, semantic tokens and folding. It never fails; the parser, not
//! this, decides what the text means.

use cairn_grammar::ast::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A name or keyword: `[A-Za-z_][A-Za-z0-9_]*`.
    Word,
    /// Numbers, durations, dates, times, money: a digit followed by word characters and
    /// the `.`, `:`, `-`, `+` of dates and decimals.
    Number,
    /// A string, plain or triple-quoted, possibly unterminated.
    String,
    Comment,
    /// Any other single character (`{`, `(`, `.`, `:`, `%`, operators).
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

impl Token {
    pub fn text<'t>(&self, src: &'t str) -> &'t str {
        src.get(self.span.start..self.span.end).unwrap_or("")
    }
}

/// Tokens of `src`, whitespace left out, offsets relative to `src`.
pub fn tokens(src: &str) -> Vec<Token> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let kind = if b.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            TokenKind::Comment
        } else if bytes[i..].starts_with(b"\"\"\"") {
            i += 3;
            while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                i += 1;
            }
            i = (i + 3).min(bytes.len());
            TokenKind::String
        } else if b == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
            }
            i = i.min(bytes.len());
            TokenKind::String
        } else if b.is_ascii_alphabetic() || b == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            TokenKind::Word
        } else if b.is_ascii_digit() {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || (matches!(bytes[i], b'.' | b':' | b'-' | b'+')
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            TokenKind::Number
        } else {
            // One character, whole, even when it is not ASCII.
            let len = src[i..].chars().next().map_or(1, char::len_utf8);
            i += len;
            TokenKind::Punct
        };
        // Never split a character: a string stopped short by the end stays whole.
        while i < bytes.len() && !src.is_char_boundary(i) {
            i += 1;
        }
        out.push(Token {
            kind,
            span: Span::new(start, i),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokenKind, &str)> {
        tokens(src).iter().map(|t| (t.kind, t.text(src))).collect()
    }

    #[test]
    fn splits_words_literals_and_comments() {
        assert_eq!(
            kinds("wait 1d // später\nsend \"Żółć 🛒\" 2026-03-01T10:00Z"),
            vec![
                (TokenKind::Word, "wait"),
                (TokenKind::Number, "1d"),
                (TokenKind::Comment, "// später"),
                (TokenKind::Word, "send"),
                (TokenKind::String, "\"Żółć 🛒\""),
                (TokenKind::Number, "2026-03-01T10:00Z"),
            ]
        );
    }

    #[test]
    fn unterminated_text_is_still_tokens() {
        assert_eq!(kinds("\"abc"), vec![(TokenKind::String, "\"abc")]);
        assert_eq!(kinds("\"\"\"ab"), vec![(TokenKind::String, "\"\"\"ab")]);
        assert_eq!(kinds("é"), vec![(TokenKind::Punct, "é")]);
    }
}
