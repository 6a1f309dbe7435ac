//! Byte offsets to LSP positions and back. LSP counts columns in UTF-16 code units; the
//! rest of Cairn counts bytes. This module is the only place the two meet.

use cairn_grammar::ast::Span;
use cairn_grammar::lines::LineIndex;
use lsp_types::{Position, Range};

/// A document's text with its line starts, for converting positions.
#[derive(Debug, Clone)]
pub struct Text {
    pub text: String,
    lines: LineIndex,
}

impl Text {
    pub fn new(text: String) -> Self {
        let lines = LineIndex::new(&text);
        Self { text, lines }
    }

    /// The LSP position of a byte offset. Offsets past the end, or inside a character,
    /// are moved back to the nearest character boundary.
    pub fn position(&self, offset: usize) -> Position {
        let offset = floor_boundary(&self.text, offset.min(self.text.len()));
        let line = self.lines.line_of(offset);
        let start = self.lines.line_start(line).unwrap_or(0);
        let character: usize = self.text[start..offset].chars().map(char::len_utf16).sum();
        Position::new(to_u32(line), to_u32(character))
    }

    pub fn range(&self, span: Span) -> Range {
        Range::new(self.position(span.start), self.position(span.end))
    }

    /// The byte offset of an LSP position. As the protocol asks, a column past the end of
    /// its line means the end of the line, and a line past the end means the end of the
    /// text; a column inside a surrogate pair means the character's start.
    pub fn offset(&self, position: Position) -> usize {
        let line = position.line as usize;
        let Some(start) = self.lines.line_start(line) else {
            return self.text.len();
        };
        let end = self
            .lines
            .line_start(line + 1)
            .map_or(self.text.len(), |next| next - 1);
        let line_text = &self.text[start..end];
        let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
        let mut units = 0usize;
        for (i, c) in line_text.char_indices() {
            let next = units + c.len_utf16();
            if next > position.character as usize {
                return start + i;
            }
            units = next;
        }
        start + line_text.len()
    }

    /// The byte span of an LSP range, with its ends in order.
    pub fn span(&self, range: Range) -> Span {
        let a = self.offset(range.start);
        let b = self.offset(range.end);
        Span::new(a.min(b), a.max(b))
    }

    pub fn line_count(&self) -> usize {
        self.lines.line_count()
    }

    /// The byte offset where 0-based `line` starts, or the end of the text.
    pub fn line_start(&self, line: usize) -> usize {
        self.lines.line_start(line).unwrap_or(self.text.len())
    }

    pub fn line_of(&self, offset: usize) -> usize {
        self.lines.line_of(offset)
    }

    /// The range covering the whole text.
    pub fn full_range(&self) -> Range {
        Range::new(Position::new(0, 0), self.position(self.text.len()))
    }
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_units() {
        // `ł` is 2 bytes and 1 unit; `🛒` is 4 bytes and 2 units.
        let text = Text::new("a\nżółw 🛒 x\n".to_string());
        let x = text.text.find('x').unwrap_or(0);
        assert_eq!(text.position(x), Position::new(1, 8));
        assert_eq!(text.offset(Position::new(1, 8)), x);
        let cart = text.text.find('🛒').unwrap_or(0);
        assert_eq!(text.position(cart), Position::new(1, 5));
        // Inside the surrogate pair: the character's start.
        assert_eq!(text.offset(Position::new(1, 6)), cart);
    }

    #[test]
    fn out_of_range_positions_clamp() {
        let text = Text::new("ab\ncd".to_string());
        assert_eq!(text.offset(Position::new(0, 99)), 2);
        assert_eq!(text.offset(Position::new(9, 0)), 5);
        assert_eq!(text.position(99), Position::new(1, 2));
        let crlf = Text::new("ab\r\ncd".to_string());
        assert_eq!(crlf.offset(Position::new(0, 9)), 2);
    }

    #[test]
    fn offsets_inside_characters_move_back() {
        let text = Text::new("ł".to_string());
        assert_eq!(text.position(1), Position::new(0, 0));
    }
}
