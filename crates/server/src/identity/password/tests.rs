use argon2::Argon2;
use argon2::password_hash::PasswordHasher;

use super::*;

/// A password that breaks no rule of the default policy for user "alice".
const STRONG: &str = "Velvet Otter Juggles 7 Teacups";

fn policy() -> PasswordPolicy {
    PasswordPolicy::default()
}

#[test]
fn defaults_are_as_documented() {
    let p = policy();
    assert_eq!(
        (p.min_length, p.min_classes, p.history, p.max_age_days),
        (12, 2, 5, None)
    );
    assert_eq!(p.validate(), Ok(()));
}

#[test]
fn strong_passphrase_breaks_no_rule() {
    assert_eq!(check(&policy(), "alice", STRONG), vec![]);
    assert!(!is_common(STRONG));
    assert!(!is_common("correct horse battery staple"));
}

#[test]
fn each_rule_alone_reports_only_itself() {
    let p = policy();
    assert_eq!(
        check(&p, "alice", "Otter 7 Cup"),
        vec![Violation::TooShort { min: 12 }]
    );
    let long = format!("Otter 7 {}", "x".repeat(MAX_PASSWORD_BYTES));
    assert_eq!(check(&p, "alice", &long), vec![Violation::TooLong]);
    assert_eq!(
        check(&p, "alice", "velvetotterjuggles"),
        vec![Violation::TooFewClasses { min: 2, found: 1 }]
    );
    assert_eq!(check(&p, "alice", "Password123!"), vec![Violation::Common]);
    assert_eq!(
        check(&p, "alice", "Velvet ALICE 7 Teacups"),
        vec![Violation::ContainsUsername]
    );
}

#[test]
fn all_violations_are_reported_in_order() {
    let p = PasswordPolicy {
        min_classes: 3,
        ..policy()
    };
    // "dragon" is on the list, contains the user name "drag", 6 chars, 1 class.
    assert_eq!(
        check(&p, "drag", "dragon"),
        vec![
            Violation::TooShort { min: 12 },
            Violation::TooFewClasses { min: 3, found: 1 },
            Violation::Common,
            Violation::ContainsUsername,
        ]
    );
}

#[test]
fn describe_joins_plain_words() {
    let all = [
        Violation::TooShort { min: 12 },
        Violation::TooLong,
        Violation::TooFewClasses { min: 2, found: 1 },
        Violation::Common,
        Violation::ContainsUsername,
        Violation::Reused { history: 5 },
    ];
    assert_eq!(
        describe(&all),
        "password rejected: shorter than 12 characters; longer than 1024 bytes; \
         uses 1 of the 4 character classes (lowercase, uppercase, digits, symbols); \
         at least 2 required; is a commonly used password; contains the user name; \
         was used recently (last 5 passwords)"
    );
    assert_eq!(
        describe(&[Violation::Reused { history: 1 }]),
        "password rejected: was used recently (last password)"
    );
    assert_eq!(describe(&[]), "password rejected");
}

#[test]
fn length_counts_characters_not_bytes() {
    let p = PasswordPolicy {
        min_classes: 0,
        ..policy()
    };
    // 11 characters but 33 bytes: too short.
    let eleven = "日本語のパスワードです";
    assert_eq!(eleven.chars().count(), 11);
    assert_eq!(
        check(&p, "alice", eleven),
        vec![Violation::TooShort { min: 12 }]
    );
    // 12 characters: long enough.
    assert_eq!(check(&p, "alice", "日本語のパスワードですね"), vec![]);
    // 1025 bytes in 257 characters is too long even though the count is fine.
    let big = format!("{}a", "😀".repeat(256));
    assert_eq!(big.len(), 1025);
    assert_eq!(check(&p, "alice", &big), vec![Violation::TooLong]);
    assert_eq!(check(&p, "alice", &big[..1024]), vec![]);
}

#[test]
fn character_classes_are_counted() {
    assert_eq!(character_classes(""), 0);
    assert_eq!(character_classes("abc"), 1);
    assert_eq!(character_classes("abcABC"), 2);
    assert_eq!(character_classes("aB3"), 3);
    assert_eq!(character_classes("aB3 "), 4);
    // Caseless scripts count as "other"; accented letters keep their case.
    assert_eq!(character_classes("日本"), 1);
    assert_eq!(character_classes("éÉ"), 2);
}

#[test]
fn user_name_is_found_case_insensitively_and_only_when_long_enough() {
    let p = PasswordPolicy {
        min_classes: 0,
        ..policy()
    };
    assert_eq!(
        check(&p, "Bob", "velvet-BOB-otters"),
        vec![Violation::ContainsUsername]
    );
    // Two-character names are not searched for.
    assert_eq!(check(&p, "al", "velvet-al-otters"), vec![]);
    assert_eq!(check(&p, "", "velvet otters"), vec![]);
}

#[test]
fn common_passwords_and_trivial_variants_are_caught() {
    for pw in [
        "password",
        "PASSWORD",
        "Password123!",
        "password!!",
        "P@ssw0rd",
        "qwerty",
        "Dragon2024",
        // The whole decoration run goes, however long.
        "Sunshine#2024!!",
        "123456789012",
        "1234567890!",
        "trustno1",
    ] {
        assert!(is_common(pw), "{pw} should be common");
    }
    for pw in [
        "",
        "velvet otter",
        "Velvet Otter Juggles",
        // A long random tail after a year is not peeled away.
        "20058204719",
        // "1234" is on the list, but ten random digits after it are not trivial.
        "12348205719364",
        // Letters after the common word: not a trailing-decoration variant.
        "passwordvelvet",
    ] {
        assert!(!is_common(pw), "{pw} should not be common");
    }
}

#[test]
fn list_is_large_and_skips_comments() {
    let list = &*COMMON;
    assert!(list.words.len() > 5_000, "{} entries", list.words.len());
    assert!(list.words.contains("password"));
    assert!(
        list.words
            .iter()
            .all(|w| !w.starts_with('#') && !w.is_empty())
    );
    // The header's first line would be an entry if comments were not skipped.
    let first = include_str!("../common-passwords.txt")
        .lines()
        .next()
        .unwrap_or_default();
    assert!(first.starts_with('#'));
    assert!(!is_common(first));
    assert!(list.max_len >= 10 && list.max_len < 64);
}

fn hash(pw: &str) -> String {
    Argon2::default()
        .hash_password(pw.as_bytes())
        .expect("hashing works")
        .to_string()
}

#[tokio::test]
async fn reuse_is_detected_within_history_only() {
    let p = PasswordPolicy {
        history: 2,
        ..policy()
    };
    let old = "Old Password 1";
    // Newest first: `old` is the second most recent.
    let within = vec![hash("Newest One 9"), hash(old), hash("Oldest One 3")];
    assert!(reused(&p, old, within.clone()).await);
    assert!(!reused(&p, "Never Used 42", within.clone()).await);
    // The same hash third from the top is beyond a history of 2.
    let beyond = vec![within[0].clone(), within[2].clone(), within[1].clone()];
    assert!(!reused(&p, old, beyond.clone()).await);
    let deeper = PasswordPolicy { history: 3, ..p };
    assert!(reused(&deeper, old, beyond).await);
}

#[tokio::test]
async fn reuse_check_needs_history() {
    let h = vec![hash("Old Password 1")];
    assert!(!reused(&policy(), "Old Password 1", vec![]).await);
    let none = PasswordPolicy {
        history: 0,
        ..policy()
    };
    assert!(!reused(&none, "Old Password 1", h.clone()).await);
    // Garbage in the history is ignored, not a match nor an error.
    let mixed = vec!["not a phc string".to_owned(), h[0].clone()];
    assert!(reused(&policy(), "Old Password 1", mixed).await);
}

#[test]
fn expiry_boundaries() {
    let day = 86_400_000_i64;
    let never = policy();
    assert!(!expired(&never, 0, i64::MAX));
    let p = PasswordPolicy {
        max_age_days: Some(90),
        ..policy()
    };
    let set = 1_700_000_000_000_i64;
    assert!(!expired(&p, set, set));
    assert!(!expired(&p, set, set + 90 * day - 1));
    assert!(expired(&p, set, set + 90 * day));
    assert!(expired(&p, set, set + 91 * day));
    // Set in the future (clock skew): fresh.
    assert!(!expired(&p, set + day, set));
    // Extremes do not overflow.
    assert!(expired(&p, i64::MIN, i64::MAX));
    assert!(!expired(&p, i64::MAX, i64::MIN));
}

#[test]
fn validate_ranges() {
    let ok = |p: PasswordPolicy| p.validate().is_ok();
    let base = policy();
    for (min_length, good) in [(7, false), (8, true), (128, true), (129, false)] {
        assert_eq!(
            ok(PasswordPolicy {
                min_length,
                ..base.clone()
            }),
            good,
            "{min_length}"
        );
    }
    for (min_classes, good) in [(0, true), (4, true), (5, false)] {
        assert_eq!(
            ok(PasswordPolicy {
                min_classes,
                ..base.clone()
            }),
            good,
            "{min_classes}"
        );
    }
    for (history, good) in [(0, true), (24, true), (25, false)] {
        assert_eq!(
            ok(PasswordPolicy {
                history,
                ..base.clone()
            }),
            good,
            "{history}"
        );
    }
    for (days, good) in [(0, false), (1, true), (3650, true), (3651, false)] {
        let p = PasswordPolicy {
            max_age_days: Some(days),
            ..base.clone()
        };
        assert_eq!(ok(p), good, "{days}");
    }
    let err = PasswordPolicy {
        min_length: 4,
        ..base
    }
    .validate()
    .unwrap_err();
    assert!(err.contains("min_length") && err.contains("got 4"), "{err}");
}

#[test]
fn policy_round_trips_and_fills_missing_fields() {
    let p = PasswordPolicy {
        max_age_days: Some(30),
        ..policy()
    };
    let json = serde_json::to_string(&p).expect("serializes");
    assert_eq!(serde_json::from_str::<PasswordPolicy>(&json).ok(), Some(p));
    let partial: PasswordPolicy = serde_json::from_str(r#"{"min_length":16}"#).expect("parses");
    assert_eq!(
        partial,
        PasswordPolicy {
            min_length: 16,
            ..policy()
        }
    );
}
