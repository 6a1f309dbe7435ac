//! A single pass over the source that finds what pest cannot recover from: where each
//! top-level item starts, unterminated strings, unbalanced brackets and nesting that is
//! too deep. It also collects the comments for the formatter.
//!
//! Item boundaries: at bracket depth 0, a line whose first word is an item keyword
//! starts a new item. Inside brackets, a line that starts in column 0 with a keyword
//! that can only begin an item (`journey`, `segment`, `contact {`, ...) also starts one,
//! and the brackets left open before it are reported. So a journey missing its closing
//! brace costs one error, not the rest of the file.

use crate::ast::{Comment, Span};
use crate::diagnostic::{Diagnostic, codes};

/// Deepest bracket nesting the parser accepts. pest recurses per level, so this keeps
/// the stack bounded whatever the input.
pub const MAX_NESTING: usize = 64;

#[derive(Debug)]
pub struct Chunk {
    pub span: Span,
    /// The scanner already reported a problem inside; pest is not run on it.
    pub broken: bool,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub chunks: Vec<Chunk>,
    pub comments: Vec<Comment>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Keywords that start an item.
fn is_item_keyword(word: &[u8]) -> bool {
    matches!(
        word,
        b"contact"
            | b"consent"
            | b"record"
            | b"event"
            | b"tag"
            | b"segment"
            | b"score"
            | b"template"
            | b"quiet"
            | b"frequency"
            | b"journey"
            | b"test"
    )
}

/// Keywords that never start a statement inside an item.
fn is_strong_item_keyword(word: &[u8]) -> bool {
    matches!(
        word,
        b"consent"
            | b"record"
            | b"event"
            | b"segment"
            | b"template"
            | b"quiet"
            | b"frequency"
            | b"journey"
            | b"test"
    )
}

/// The byte order mark, whitespace to the grammar.
const BOM: &[u8] = "\u{FEFF}".as_bytes();

/// What a byte means to the scanner's main loop.
const PLAIN: u8 = 0;
/// ASCII whitespace other than a newline.
const BLANK: u8 = 1;
const NEWLINE: u8 = 2;
const SLASH: u8 = 3;
const QUOTE: u8 = 4;
const OPEN: u8 = 5;
const CLOSE: u8 = 6;
/// The first byte of a character beyond ASCII (or a stray continuation byte).
const WIDE: u8 = 7;

/// The class of every byte value.
static CLASS: [u8; 256] = {
    let mut class = [PLAIN; 256];
    let mut b = 0x80;
    while b < 256 {
        class[b] = WIDE;
        b += 1;
    }
    class[b' ' as usize] = BLANK;
    class[b'\t' as usize] = BLANK;
    class[b'\r' as usize] = BLANK;
    class[0x0C] = BLANK;
    class[b'\n' as usize] = NEWLINE;
    class[b'/' as usize] = SLASH;
    class[b'"' as usize] = QUOTE;
    class[b'{' as usize] = OPEN;
    class[b'(' as usize] = OPEN;
    class[b'[' as usize] = OPEN;
    class[b'}' as usize] = CLOSE;
    class[b')' as usize] = CLOSE;
    class[b']' as usize] = CLOSE;
    class
};

pub fn scan(src: &str) -> Scan {
    Scanner::new(src).run()
}

struct Scanner<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Scan,
    /// Open brackets of the current chunk: (byte, offset).
    open: Vec<(u8, usize)>,
    chunk_start: Option<usize>,
    chunk_broken: bool,
    too_deep_reported: bool,
}

impl<'a> Scanner<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            out: Scan::default(),
            open: Vec::new(),
            chunk_start: None,
            chunk_broken: false,
            too_deep_reported: false,
        }
    }

    fn run(mut self) -> Scan {
        let len = self.bytes.len();
        let mut at_line_start = true;
        while self.pos < len {
            if at_line_start {
                self.line_start();
                at_line_start = false;
                if self.pos >= len {
                    break;
                }
            }
            let b = self.bytes[self.pos];
            match CLASS[usize::from(b)] {
                PLAIN => {
                    self.ensure_chunk(self.pos);
                    self.pos = self.quiet_run_end(self.pos + 1);
                }
                // Before the first item, a blank does not start a chunk.
                BLANK if self.chunk_start.is_none() => self.pos += 1,
                BLANK => self.pos = self.quiet_run_end(self.pos + 1),
                NEWLINE => {
                    self.pos += 1;
                    at_line_start = true;
                }
                SLASH if self.bytes.get(self.pos + 1) == Some(&b'/') => self.comment(),
                SLASH => {
                    self.ensure_chunk(self.pos);
                    self.pos += 1;
                }
                QUOTE => {
                    if self.string() {
                        at_line_start = true;
                    }
                }
                OPEN => self.open(b),
                CLOSE => {
                    self.ensure_chunk(self.pos);
                    self.close(b);
                    self.pos += 1;
                }
                _ => {
                    // A byte order mark is whitespace to the grammar too.
                    if !self.bytes[self.pos..].starts_with(BOM) {
                        self.ensure_chunk(self.pos);
                    }
                    self.pos += utf8_len(b);
                }
            }
        }
        self.finish_chunk(len);
        self.out
    }

    /// Where the run of [`PLAIN`] and [`BLANK`] bytes from `from` ends: inside a chunk,
    /// they change nothing.
    fn quiet_run_end(&self, from: usize) -> usize {
        self.bytes[from..]
            .iter()
            .position(|&b| CLASS[usize::from(b)] > BLANK)
            .map_or(self.bytes.len(), |p| from + p)
    }

    fn open(&mut self, b: u8) {
        self.ensure_chunk(self.pos);
        self.open.push((b, self.pos));
        if self.open.len() > MAX_NESTING && !self.too_deep_reported {
            self.too_deep_reported = true;
            self.chunk_broken = true;
            self.out.diagnostics.push(
                Diagnostic::error(
                    codes::TOO_DEEP,
                    format!("brackets are nested more than {MAX_NESTING} levels deep"),
                )
                .with_label(Span::new(self.pos, self.pos + 1), "too deep here")
                .with_help("split the logic into segments or separate steps"),
            );
        }
        self.pos += 1;
    }

    /// Decides whether the line starting at `self.pos` begins a new item, and moves to
    /// the line's first word.
    fn line_start(&mut self) {
        let line = self.pos;
        let mut first = line;
        while first < self.bytes.len() && matches!(self.bytes[first], b' ' | b'\t' | b'\r') {
            first += 1;
        }
        if self.bytes[first..].starts_with(BOM) {
            first += 3;
        }
        // The blanks and the byte order mark before the first word change nothing.
        self.pos = first;
        // The first letters of the item keywords.
        if !matches!(
            self.bytes.get(first),
            Some(b'c' | b'e' | b'f' | b'j' | b'q' | b'r' | b's' | b't')
        ) {
            return;
        }
        let word = word_at(self.bytes, first);
        if !is_item_keyword(word) {
            return;
        }
        if self.open.is_empty() {
            self.start_chunk(first);
        } else if first == line && self.is_strong_item_start(first, word) {
            self.report_unclosed();
            self.start_chunk(first);
        }
    }

    fn is_strong_item_start(&self, at: usize, word: &[u8]) -> bool {
        if is_strong_item_keyword(word) {
            return true;
        }
        let rest = &self.src[at + word.len()..];
        let rest = rest.trim_start_matches([' ', '\t']);
        match word {
            b"contact" => rest.starts_with('{'),
            b"score" | b"tag" => {
                let name = word_at(rest.as_bytes(), 0);
                if name.is_empty() || matches!(name, b"add" | b"remove") {
                    return false;
                }
                let after = rest[name.len()..].trim_start_matches([' ', '\t']);
                if word == b"score" {
                    after.starts_with('{') || after.starts_with('"')
                } else {
                    after.is_empty()
                        || after.starts_with('\n')
                        || after.starts_with("\r\n")
                        || after.starts_with("//")
                        || after.starts_with('"')
                }
            }
            _ => false,
        }
    }

    fn report_unclosed(&mut self) {
        if let Some(&(b, at)) = self.open.last() {
            let close = closing(b);
            self.out.diagnostics.push(
                Diagnostic::error(
                    codes::UNCLOSED_DELIMITER,
                    format!("this `{}` is never closed", b as char),
                )
                .with_label(Span::new(at, at + 1), format!("unclosed `{}`", b as char))
                .with_help(format!(
                    "add `{close}` where the block ends, before the next top-level item"
                )),
            );
            self.chunk_broken = true;
        }
        self.open.clear();
    }

    fn close(&mut self, b: u8) {
        match self.open.pop() {
            Some((open, _)) if closing(open) == b as char => {}
            Some((open, at)) => {
                self.chunk_broken = true;
                self.out.diagnostics.push(
                    Diagnostic::error(
                        codes::UNMATCHED_DELIMITER,
                        format!(
                            "`{}` does not close the `{}` opened before it",
                            b as char, open as char
                        ),
                    )
                    .with_label(Span::new(self.pos, self.pos + 1), "mismatched")
                    .with_secondary(
                        Span::new(at, at + 1),
                        format!("`{}` opened here", open as char),
                    )
                    .with_help(format!("close it with `{}` first", closing(open))),
                );
            }
            None => {
                self.chunk_broken = true;
                self.out.diagnostics.push(
                    Diagnostic::error(
                        codes::UNMATCHED_DELIMITER,
                        format!("unexpected `{}` with nothing to close", b as char),
                    )
                    .with_label(Span::new(self.pos, self.pos + 1), "no matching opening")
                    .with_help("remove it, or add the opening bracket it belongs to"),
                );
            }
        }
    }

    fn comment(&mut self) {
        let start = self.pos;
        let end = memchr_newline(self.bytes, start);
        let text = self.src[start..end].trim_end_matches('\r');
        self.out.comments.push(Comment {
            text: text.to_string(),
            span: Span::new(start, start + text.len()),
        });
        self.pos = end;
    }

    /// Skips a string literal. Returns true when it swallowed the end of the line
    /// (an unterminated plain string), so the caller treats the next byte as a line start.
    fn string(&mut self) -> bool {
        let start = self.pos;
        self.ensure_chunk(start);
        if self.bytes[start..].starts_with(b"\"\"\"") {
            return match find(self.bytes, start + 3, b"\"\"\"") {
                Some(end) => {
                    self.pos = end + 3;
                    false
                }
                None => {
                    self.unterminated(start, self.bytes.len(), "\"\"\"");
                    self.pos = self.bytes.len();
                    false
                }
            };
        }
        let mut i = start + 1;
        while i < self.bytes.len() {
            match self.bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.pos = i + 1;
                    return false;
                }
                b'\n' => {
                    let end = if i > start && self.bytes[i - 1] == b'\r' {
                        i - 1
                    } else {
                        i
                    };
                    self.unterminated(start, end, "\"");
                    self.pos = i + 1;
                    return true;
                }
                _ => i += 1,
            }
        }
        self.unterminated(start, self.bytes.len(), "\"");
        self.pos = self.bytes.len();
        false
    }

    fn unterminated(&mut self, start: usize, end: usize, quote: &str) {
        self.chunk_broken = true;
        let end = end.max(start + 1).min(self.bytes.len().max(start + 1));
        self.out.diagnostics.push(
            Diagnostic::error(codes::UNTERMINATED_STRING, "unterminated string")
                .with_label(Span::new(start, end), "this string is never closed")
                .with_help(if quote == "\"" {
                    "close it with `\"` on the same line; use `\"\"\"` for text over several lines"
                        .to_string()
                } else {
                    "close the block with `\"\"\"`".to_string()
                }),
        );
    }

    fn ensure_chunk(&mut self, at: usize) {
        if self.chunk_start.is_none() {
            self.chunk_start = Some(at);
        }
    }

    fn start_chunk(&mut self, at: usize) {
        self.finish_chunk(at);
        self.chunk_start = Some(at);
    }

    fn finish_chunk(&mut self, end: usize) {
        if let Some(start) = self.chunk_start.take() {
            if end >= self.bytes.len() && !self.open.is_empty() {
                self.report_unclosed();
            }
            let text = &self.src[start..end];
            let trimmed = text.trim_end();
            self.out.chunks.push(Chunk {
                span: Span::new(start, start + trimmed.len()),
                broken: self.chunk_broken,
            });
        }
        self.chunk_broken = false;
        self.too_deep_reported = false;
        self.open.clear();
    }
}

fn closing(open: u8) -> char {
    match open {
        b'{' => '}',
        b'(' => ')',
        _ => ']',
    }
}

/// The run of ASCII letters, digits and `_` at `at`.
fn word_at(bytes: &[u8], at: usize) -> &[u8] {
    let mut end = at;
    while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
        end += 1;
    }
    &bytes[at..end]
}

fn memchr_newline(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| from + p)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}
