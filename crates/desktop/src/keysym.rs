//! Keysyms: X11's names for what a key produces (`XK_a`, `XK_Return`,
//! `XK_EuroSign`), independent of which physical key (keycode) does it.
//! The technician side sends keysyms; [`crate::Input`] finds the keycode.

pub const BACKSPACE: u32 = 0xff08;
pub const TAB: u32 = 0xff09;
pub const RETURN: u32 = 0xff0d;
pub const ESCAPE: u32 = 0xff1b;
pub const DELETE: u32 = 0xffff;
pub const SHIFT_L: u32 = 0xffe1;
pub const SHIFT_R: u32 = 0xffe2;
pub const CONTROL_L: u32 = 0xffe3;
pub const CONTROL_R: u32 = 0xffe4;
pub const CAPS_LOCK: u32 = 0xffe5;
pub const ALT_L: u32 = 0xffe9;
pub const ALT_R: u32 = 0xffea;
pub const SUPER_L: u32 = 0xffeb;
pub const MODE_SWITCH: u32 = 0xff7e;
pub const ISO_LEVEL3_SHIFT: u32 = 0xfe03;
pub const EURO_SIGN: u32 = 0x20ac;

/// The keysym for typing `c`: Latin-1 characters are their own keysyms,
/// control characters map to their keys (`\n` → Return), everything else
/// is a Unicode keysym (`0x0100_0000 + code point`), which Xlib turns back
/// into the character.
pub fn from_char(c: char) -> u32 {
    match c {
        '\n' | '\r' => RETURN,
        '\t' => TAB,
        '\u{8}' => BACKSPACE,
        '\u{1b}' => ESCAPE,
        '\u{7f}' => DELETE,
        ' '..='~' | '\u{a0}'..='\u{ff}' => c as u32,
        _ => 0x0100_0000 + c as u32,
    }
}

/// Other keysyms that mean the same character as `keysym` (a keymap may
/// hold the legacy one, e.g. `EuroSign` for U+20AC, or a Unicode keysym for
/// a Latin-1 character).
pub(crate) fn equivalents(keysym: u32) -> Vec<u32> {
    let mut v = vec![keysym];
    match keysym {
        0x20..=0x7e | 0xa0..=0xff => v.push(0x0100_0000 + keysym),
        0x0100_0020..=0x0100_007e | 0x0100_00a0..=0x0100_00ff => v.push(keysym - 0x0100_0000),
        0x0100_20ac => v.push(EURO_SIGN),
        EURO_SIGN => v.push(0x0100_20ac),
        _ => {}
    }
    v
}

/// Whether `keysym` is a letter with distinct lower and upper case (Caps
/// Lock applies to it). Latin-1 only; enough for the level choice.
pub(crate) fn is_cased_letter(keysym: u32) -> bool {
    char::from_u32(keysym).is_some_and(|c| {
        keysym <= 0xff
            && c.is_alphabetic()
            && (c.is_lowercase() || c.is_uppercase())
            && c != 'ß'
            && c != 'ÿ'
    })
}

/// Modifier keysyms (their keycodes are tracked as modifiers, not typed).
pub(crate) fn is_modifier(keysym: u32) -> bool {
    matches!(keysym, 0xffe1..=0xffee | MODE_SWITCH | ISO_LEVEL3_SHIFT | 0xfe01..=0xfe0f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_map_to_keysyms() {
        assert_eq!(from_char('a'), 0x61);
        assert_eq!(from_char('ü'), 0xfc);
        assert_eq!(from_char('½'), 0xbd);
        assert_eq!(from_char('€'), 0x0100_20ac);
        assert_eq!(from_char('\n'), RETURN);
        assert!(equivalents(from_char('€')).contains(&EURO_SIGN));
        assert!(equivalents(0xfc).contains(&0x0100_00fc));
        assert!(is_cased_letter(0xfc) && !is_cased_letter(0xdf) && !is_cased_letter(0x31));
    }
}
