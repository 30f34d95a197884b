//! Which characters of untrusted text (what an endpoint reports, what a
//! user typed) must never reach a terminal, a log line or a page as they
//! are. One definition for the gateway, which cleans what agents report
//! (`jumpgate-server`'s `agents::reported`), and for `jg`, which escapes
//! whatever it prints in a table.

/// Control characters (C0, DEL, C1: terminal escape sequences start with
/// them) and the Unicode format characters that reorder or hide text
/// (bidirectional embeddings, overrides and isolates, zero-width
/// characters, the byte-order mark, interlinear annotations).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'   // zero-width space, joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{FEFF}'              // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_invisible_characters_are_unsafe_and_text_is_not() {
        for c in [
            '\x1b', '\x07', '\0', '\n', '\t', '\x7f', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200b}',
            '\u{feff}',
        ] {
            assert!(is_unsafe_char(c), "{c:?}");
        }
        for c in "az AZ09-_./:~é東京ü€…\u{FFFD}".chars() {
            assert!(!is_unsafe_char(c), "{c:?}");
        }
    }
}
