//! Text that came from the network (a technician's name, a site name) made
//! safe to show: it is only ever painted as glyphs, never interpreted, but
//! control and formatting characters are dropped first so that a name cannot
//! reorder the sentence around it (bidi overrides), hide itself (zero-width
//! characters) or break lines, and its length is capped.

/// Longest technician name shown, in characters (longer names end in "…").
pub const MAX_NAME_CHARS: usize = 64;
/// Longest site name shown, in characters.
pub const MAX_SITE_CHARS: usize = 80;

/// `s` as one line of plain text of at most `max_chars` characters: control
/// characters, bidi controls, zero-width and other invisible formatting
/// characters removed, runs of white space (line breaks included) folded into
/// one space, ends trimmed; a cut string ends in "…".
pub fn plain_text(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut count = 0usize;
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if is_hidden(c) {
            continue;
        }
        let needed = usize::from(pending_space) + 1;
        if count + needed > max_chars {
            // Make room for the ellipsis within the limit.
            while count >= max_chars {
                out.pop();
                count -= 1;
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Characters that draw nothing or change how other text is laid out.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD            // soft hyphen
            | 0x034F          // combining grapheme joiner
            | 0x061C          // arabic letter mark
            | 0x115F | 0x1160 // hangul fillers
            | 0x17B4 | 0x17B5
            | 0x180B..=0x180F // mongolian selectors
            | 0x200B..=0x200F // zero width, LRM, RLM
            | 0x2028..=0x202E // separators, bidi embeddings and overrides
            | 0x2060..=0x206F // word joiner, invisible operators, bidi isolates
            | 0x3164
            | 0xFE00..=0xFE0F // variation selectors
            | 0xFEFF          // BOM / zero width no-break space
            | 0xFFA0
            | 0xFFF0..=0xFFFB // interlinear annotations, specials
            | 0xE0000..=0xE0FFF // tags, variation selectors supplement
        )
        || (0xE000..=0xF8FF).contains(&(c as u32)) // private use: no meaning to show
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_through() {
        assert_eq!(plain_text("Alice Smith", 64), "Alice Smith");
        assert_eq!(plain_text("Grüße Wörld ½ €", 64), "Grüße Wörld ½ €");
    }

    #[test]
    fn controls_bidi_and_invisibles_are_dropped_and_space_folded() {
        let evil = "  Ali\u{202E}ce\u{200B}\n\tSmith\u{0007}\u{2066}x\u{2069}\r\n ";
        assert_eq!(plain_text(evil, 64), "Alice Smithx");
        assert_eq!(plain_text("\u{202E}\u{200B}\n", 64), "");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis_within_the_limit() {
        let long = "a".repeat(200);
        let cut = plain_text(&long, MAX_NAME_CHARS);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with('…'));
        // A cut right after a space does not leave "word …".
        assert_eq!(plain_text("abc defgh", 5), "abc…");
        // Exactly at the limit: unchanged.
        assert_eq!(plain_text("abcde", 5), "abcde");
    }
}
