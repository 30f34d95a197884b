//! From a terminal recording to searchable text, and the words of a text.
//!
//! A recording is asciicast v2: a header line, then `[t, code, data]`
//! lines. The `o` events (what the endpoint printed) and the `i` events
//! (what the technician typed, when the site records keystrokes) become two
//! **streams** of plain text: escape sequences (CSI, OSC, DCS, … parsed by
//! `anstyle-parse`, the VT500 state machine also behind `clap`'s colours)
//! are dropped, backspace (and DEL in typed input) erases the character
//! before it, every run of whitespace and line breaks becomes one space or
//! one line break, and each event's place in the text is remembered with
//! its time ([`Stream::time_at`]), so a match in the text is a moment of
//! the recording.
//!
//! **Words** ([`words`]) are the index's tokens: maximal runs of letters,
//! digits and `_`, ASCII-lowercased, at least [`MIN_WORD`] characters,
//! cut at [`MAX_WORD`]. `rm -rf /var/lib` has the words `rm`, `rf`, `var`,
//! `lib`: a path is indexed by its components. A query **matches** where
//! its text (whitespace-normalised, ASCII case ignored) appears starting
//! and ending on word boundaries (`grep -iwF`): so every word of the query
//! is a whole word of the text, and the index of words finds every
//! recording that can match.

use anstyle_parse::{Parser, Perform};

/// Shorter words are not indexed (nor looked up): they are in nearly every
/// recording.
pub(crate) const MIN_WORD: usize = 2;
/// Longer words are indexed by their first this many bytes (at a
/// character boundary).
pub(crate) const MAX_WORD: usize = 64;
/// Text kept per stream: beyond it a recording's text is cut (and its
/// index says so, see `Doc::cut`).
pub(crate) const MAX_TEXT: usize = 64 * 1024 * 1024;

/// Which stream a text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    /// What the endpoint printed (`o`).
    Output,
    /// What was typed (`i`, recorded when the site records keystrokes).
    Input,
}

/// One stream's plain text and when each part of it arrived.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    text: String,
    /// (byte position in `text`, seconds): from that position on, the text
    /// came with an event at that time.
    marks: Vec<(usize, f64)>,
    parser: Parser,
    /// The text reached [`MAX_TEXT`]: the rest was dropped.
    cut: bool,
}

/// The parser's actions on a stream's text.
struct Sink<'a> {
    text: &'a mut String,
    cut: &'a mut bool,
}

impl Sink<'_> {
    fn push(&mut self, c: char) {
        if c.is_whitespace() {
            return self.space(c == '\n');
        }
        // C1 controls and the like are nothing on a screen.
        if c.is_control() {
            return;
        }
        if self.text.len() + c.len_utf8() > MAX_TEXT {
            *self.cut = true;
            return;
        }
        self.text.push(c);
    }

    /// One whitespace: runs collapse to a single space, or a single line
    /// break if the run had one.
    fn space(&mut self, line: bool) {
        match self.text.chars().next_back() {
            None => {}
            Some(' ') if line => {
                self.text.pop();
                self.text.push('\n');
            }
            Some(' ' | '\n') => {}
            Some(_) if self.text.len() < MAX_TEXT => {
                self.text.push(if line { '\n' } else { ' ' });
            }
            Some(_) => *self.cut = true,
        }
    }

    /// Backspace: the character before goes (not past a line break).
    fn erase(&mut self) {
        if let Some(c) = self.text.chars().next_back()
            && c != '\n'
        {
            self.text.pop();
        }
    }
}

impl Perform for Sink<'_> {
    fn print(&mut self, c: char) {
        self.push(c);
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' | b'\r' | 0x0b | 0x0c => self.space(true),
            b'\t' => self.space(false),
            0x08 => self.erase(),
            _ => {}
        }
    }
}

impl Stream {
    /// Appends the data of one event that came at `t` seconds.
    pub(crate) fn feed(&mut self, t: f64, data: &str, which: Which) {
        let at = self.text.len();
        match self.marks.last_mut() {
            Some((pos, time)) if *pos == at => *time = t,
            _ => self.marks.push((at, t)),
        }
        let mut sink = Sink {
            text: &mut self.text,
            cut: &mut self.cut,
        };
        for &b in data.as_bytes() {
            // DEL is how a keyboard's backspace is typed; in output it is
            // nothing (terminals ignore it), as the parser says.
            if b == 0x7f {
                if which == Which::Input {
                    sink.erase();
                }
            } else {
                self.parser.advance(&mut sink, b);
            }
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// When the text at byte `pos` arrived (seconds into the recording).
    pub(crate) fn time_at(&self, pos: usize) -> f64 {
        let i = self.marks.partition_point(|(p, _)| *p <= pos);
        i.checked_sub(1).map_or(0.0, |i| self.marks[i].1)
    }
}

/// A terminal recording's text, both streams.
#[derive(Debug, Default)]
pub(crate) struct Doc {
    pub(crate) output: Stream,
    pub(crate) input: Stream,
    /// An incomplete line carried over to the next piece.
    partial: Vec<u8>,
    header_seen: bool,
    /// Bytes of asciicast read.
    pub(crate) cast_bytes: u64,
}

impl Doc {
    /// Reads the next piece of the asciicast text (pieces split anywhere).
    pub(crate) fn feed(&mut self, piece: &[u8]) {
        self.cast_bytes += piece.len() as u64;
        let mut rest = piece;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(nl);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(line);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole);
            }
        }
        self.partial.extend_from_slice(rest);
    }

    /// The end of the recording: a last line without its newline.
    pub(crate) fn finish(&mut self) {
        let last = std::mem::take(&mut self.partial);
        if !last.is_empty() {
            self.line(&last);
        }
    }

    fn line(&mut self, line: &[u8]) {
        if !self.header_seen {
            self.header_seen = true;
            if line.first() == Some(&b'{') {
                return;
            }
        }
        if line.first() != Some(&b'[') {
            return;
        }
        // A line that does not parse (a cut recording's last) is skipped.
        let Ok((t, code, data)) = serde_json::from_slice::<(f64, String, String)>(line) else {
            return;
        };
        match code.as_str() {
            "o" => self.output.feed(t, &data, Which::Output),
            "i" => self.input.feed(t, &data, Which::Input),
            _ => {}
        }
    }

    /// Whether either stream was cut at [`MAX_TEXT`].
    pub(crate) fn cut(&self) -> bool {
        self.output.cut || self.input.cut
    }

    /// Bytes of text in both streams.
    pub(crate) fn text_bytes(&self) -> usize {
        self.output.text().len() + self.input.text().len()
    }

    pub(crate) fn streams(&self) -> [(Which, &Stream); 2] {
        [(Which::Output, &self.output), (Which::Input, &self.input)]
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The index's words of `text` (see the module doc), in order, repeats
/// included.
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| w.chars().count() >= MIN_WORD)
        .map(|w| {
            let mut end = w.len().min(MAX_WORD);
            while !w.is_char_boundary(end) {
                end -= 1;
            }
            w[..end].to_ascii_lowercase()
        })
}

/// Why a query is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("the search text is empty")]
    Empty,
    #[error("the search text is longer than {MAX_QUERY} characters")]
    TooLong,
    #[error(
        "the search text needs a word of at least {MIN_WORD} letters or digits (the index holds words, not single characters)"
    )]
    NoWord,
}

/// Longest query, in characters.
pub(crate) const MAX_QUERY: usize = 256;

/// A phrase to find: its normalised text and its distinct words.
#[derive(Debug)]
pub(crate) struct Query {
    /// Whitespace runs as one space, ASCII lowercased.
    needle: String,
    pub(crate) words: Vec<String>,
    starts_in_word: bool,
    ends_in_word: bool,
}

impl Query {
    pub(crate) fn parse(q: &str) -> Result<Self, QueryError> {
        let q = q.trim();
        if q.is_empty() {
            return Err(QueryError::Empty);
        }
        if q.chars().count() > MAX_QUERY {
            return Err(QueryError::TooLong);
        }
        let needle = q
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let mut words: Vec<String> = words(&needle).collect();
        words.sort();
        words.dedup();
        if words.is_empty() {
            return Err(QueryError::NoWord);
        }
        Ok(Self {
            starts_in_word: needle.chars().next().is_some_and(is_word_char),
            ends_in_word: needle.chars().next_back().is_some_and(is_word_char),
            needle,
            words,
        })
    }

    /// Where the phrase is in `text`: byte ranges, in order, not
    /// overlapping, at most `max`.
    pub(crate) fn find(&self, text: &str, max: usize) -> Vec<std::ops::Range<usize>> {
        // Same length as `text`, byte for byte: ASCII lowercase, and line
        // breaks as the spaces a query has.
        let hay: Vec<u8> = text
            .bytes()
            .map(|b| {
                if b == b'\n' {
                    b' '
                } else {
                    b.to_ascii_lowercase()
                }
            })
            .collect();
        let finder = memchr::memmem::Finder::new(self.needle.as_bytes());
        let mut out = Vec::new();
        let mut from = 0;
        while out.len() < max {
            let Some(i) = finder.find(&hay[from..]).map(|i| i + from) else {
                break;
            };
            let end = i + self.needle.len();
            let before = text[..i].chars().next_back();
            let after = text[end..].chars().next();
            let cut_start = self.starts_in_word && before.is_some_and(is_word_char);
            let cut_end = self.ends_in_word && after.is_some_and(is_word_char);
            let bounded = !cut_start && !cut_end;
            if bounded {
                out.push(i..end);
                from = end;
            } else {
                from = i + text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
        out
    }
}

/// Up to `around` characters each side of `range` in `text`, on one line
/// (line breaks shown as spaces), with `…` where it was cut.
pub(crate) fn snippet(text: &str, range: std::ops::Range<usize>, around: usize) -> String {
    let mut start = range.start;
    for (n, (i, _)) in text[..range.start].char_indices().rev().enumerate() {
        if n >= around {
            break;
        }
        start = i;
    }
    let mut end = range.end;
    for (n, (i, c)) in text[range.end..].char_indices().enumerate() {
        if n >= around {
            break;
        }
        end = range.end + i + c.len_utf8();
    }
    let mut s = String::new();
    if start > 0 {
        s.push('…');
    }
    s.push_str(&text[start..end].replace('\n', " "));
    if end < text.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests;
