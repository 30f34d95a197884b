//! Text an endpoint reports about itself is untrusted: the one cleaning
//! every such string goes through before the gateway stores, logs or shows
//! it (host name, OS, architecture, agent version at enrollment, in the
//! hello and in later updates; an agent's refusal reasons and transfer
//! claims).
//!
//! Control characters (terminal escape sequences start with them) and the
//! Unicode format characters that reorder or hide text
//! ([`jumpgate_proto::text::is_unsafe_char`]) are each replaced by
//! `U+FFFD`, so that something was there stays visible; the result is cut
//! to a maximum length in characters, marked with `…`.

use jumpgate_proto::text::is_unsafe_char as is_unsafe;

/// Longest host name (a DNS name is at most 253 characters).
pub(crate) const HOSTNAME_MAX: usize = 253;
/// Longest OS description, architecture and agent version.
pub(crate) const OS_MAX: usize = 128;
pub(crate) const ARCH_MAX: usize = 32;
pub(crate) const VERSION_MAX: usize = 64;
/// Longest endpoint name kept when a refused one is recorded (valid names
/// are at most 64 characters).
pub(crate) const NAME_MAX: usize = 80;
/// Longest free-text message (a refusal reason).
pub(crate) const MESSAGE_MAX: usize = 256;

/// `s` with unsafe characters replaced, cut to `max` characters.
pub(crate) fn text(s: &str, max: usize) -> String {
    let cut = s.chars().nth(max).is_some();
    let keep = if cut { max.saturating_sub(1) } else { max };
    let mut out: String = s
        .chars()
        .take(keep)
        .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
        .collect();
    if cut {
        out.push('…');
    }
    out
}

/// The endpoint details an agent reports, cleaned.
pub(crate) fn details(
    hostname: &str,
    os: &str,
    arch: &str,
    agent_version: &str,
) -> jumpgate_api_types::EndpointDetails {
    jumpgate_api_types::EndpointDetails {
        hostname: text(hostname, HOSTNAME_MAX),
        os: text(os, OS_MAX),
        arch: text(arch, ARCH_MAX),
        agent_version: text(agent_version, VERSION_MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_invisible_characters_are_replaced() {
        // Clear screen, set the window title, a C1 CSI, DEL, a bidi override.
        let hostile = "\x1b[2J\x1b]0;pwned\x07web\u{9b}31m\x7f\u{202e}gnp.exe";
        let clean = text(hostile, 100);
        assert!(!clean.chars().any(is_unsafe), "{clean:?}");
        assert_eq!(
            clean,
            "\u{FFFD}[2J\u{FFFD}]0;pwned\u{FFFD}web\u{FFFD}31m\u{FFFD}\u{FFFD}gnp.exe"
        );
        // Ordinary text, accents and other scripts pass unchanged.
        assert_eq!(
            text("Debian GNU/Linux 12 (bookworm)", 128),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(text("hôte-東京", 128), "hôte-東京");
        assert_eq!(text("", 128), "");
    }

    #[test]
    fn long_text_is_cut_with_a_mark() {
        let long = "x".repeat(3000);
        let cut = text(&long, OS_MAX);
        assert_eq!(cut.chars().count(), OS_MAX);
        assert!(cut.ends_with('…'));
        // Exactly at the limit: unchanged.
        let exact = "y".repeat(OS_MAX);
        assert_eq!(text(&exact, OS_MAX), exact);
        let d = details(&long, &long, &long, &long);
        assert_eq!(d.hostname.chars().count(), HOSTNAME_MAX);
        assert_eq!(d.arch.chars().count(), ARCH_MAX);
        assert_eq!(d.agent_version.chars().count(), VERSION_MAX);
    }
}
