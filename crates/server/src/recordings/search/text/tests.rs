use super::*;

fn output(events: &[(f64, &str)]) -> Stream {
    let mut s = Stream::default();
    for (t, d) in events {
        s.feed(*t, d, Which::Output);
    }
    s
}

#[test]
fn escape_sequences_are_dropped_even_split_across_events() {
    let s = output(&[(
        0.0,
        "\x1b[1;31mred\x1b[0m plain \x1b]0;user@host: ~\x07title-gone",
    )]);
    assert_eq!(s.text(), "red plain title-gone");
    // A CSI cut between two events, and a DCS string.
    let s = output(&[(0.0, "a\x1b[3"), (0.1, "1mb\x1bPq#0;2;0;0;0\x1b\\c")]);
    assert_eq!(s.text(), "abc");
    // Bracketed paste and cursor keys as a shell echoes them.
    let s = output(&[(0.0, "\x1b[?2004h$ ls\x1b[?2004l\r\n")]);
    assert_eq!(s.text(), "$ ls\n");
    // UTF-8 passes through.
    let s = output(&[(0.0, "caf\u{e9} \u{1F600}")]);
    assert_eq!(s.text(), "caf\u{e9} \u{1F600}");
}

#[test]
fn whitespace_collapses_and_backspace_erases() {
    let s = output(&[(0.0, "a\r\n\r\n  b\t\tc  \r\nd")]);
    assert_eq!(s.text(), "a\nb c\nd");
    // A shell erasing a typed character: BS, space, BS.
    let s = output(&[(0.0, "rm -rf /varx\x08 \x08/lib")]);
    assert_eq!(s.text(), "rm -rf /var/lib");
    // Typed input: DEL is the backspace key; it never crosses a line.
    let mut s = Stream::default();
    s.feed(0.0, "echo x\r", Which::Input);
    s.feed(0.5, "\x7f\x7fls /tmq\x7fp\r", Which::Input);
    assert_eq!(s.text(), "echo x\nls /tmp\n");
    // In output DEL is nothing.
    let s = output(&[(0.0, "ab\x7fc")]);
    assert_eq!(s.text(), "abc");
}

#[test]
fn each_position_has_the_time_of_the_event_that_brought_it() {
    let s = output(&[
        (1.0, "hello "),
        (1.5, "\x1b[0m"),
        (2.0, "world"),
        (3.0, "\r\n"),
    ]);
    assert_eq!(s.text(), "hello world\n");
    assert_eq!(s.time_at(0), 1.0);
    assert_eq!(s.time_at(5), 1.0);
    // The escape-only event brought nothing: `w` is the 2.0 event's.
    assert_eq!(s.time_at(6), 2.0);
    assert_eq!(s.time_at(10), 2.0);
    assert_eq!(s.time_at(11), 3.0);
}

#[test]
fn an_asciicast_split_anywhere_reads_as_two_streams() {
    let cast = concat!(
        "{\"version\": 2, \"width\": 80, \"height\": 24}\n",
        "[0.100000, \"o\", \"$ \"]\n",
        "[0.200000, \"i\", \"echo hi\\r\"]\n",
        "[0.300000, \"r\", \"100x30\"]\n",
        "[0.400000, \"o\", \"echo hi\\r\\nhi\\r\\n\"]\n",
        "not json\n",
        "[0.500000, \"o\", \"bye\"]"
    );
    for cut in 0..cast.len() {
        let mut d = Doc::default();
        d.feed(&cast.as_bytes()[..cut]);
        d.feed(&cast.as_bytes()[cut..]);
        d.finish();
        assert_eq!(d.output.text(), "$ echo hi\nhi\nbye", "cut at {cut}");
        assert_eq!(d.input.text(), "echo hi\n", "cut at {cut}");
        assert_eq!(d.cast_bytes, cast.len() as u64);
    }
}

#[test]
fn words_are_lowercase_runs_of_letters_digits_and_underscores() {
    let w: Vec<String> = words("$ rm -rf /var/lib/x && Echo rec_First ÉTÉ").collect();
    assert_eq!(w, ["rm", "rf", "var", "lib", "echo", "rec_first", "ÉtÉ"]);
    let long = "a".repeat(100);
    assert_eq!(words(&long).next().unwrap().len(), MAX_WORD);
    // Cut at a character boundary.
    let long = "é".repeat(40);
    let w = words(&long).next().unwrap();
    assert!(w.len() <= MAX_WORD && w.chars().all(|c| c == 'é'), "{w}");
}

#[test]
fn queries_are_checked() {
    assert_eq!(Query::parse("  ").unwrap_err(), QueryError::Empty);
    assert_eq!(
        Query::parse(&"x".repeat(MAX_QUERY + 1)).unwrap_err(),
        QueryError::TooLong
    );
    assert_eq!(Query::parse("/ - a").unwrap_err(), QueryError::NoWord);
    let q = Query::parse("rm  -rf /var/lib /var").unwrap();
    assert_eq!(q.words, ["lib", "rf", "rm", "var"]);
}

#[test]
fn a_phrase_matches_on_word_boundaries_ignoring_ascii_case_and_spacing() {
    let q = Query::parse("rm -rf /var/lib").unwrap();
    let text = "$ echo 'rm -rf /var/lib/x' > /dev/null\nRM -RF\n/VAR/LIB\nperm -rf /var/lib\nrm -rf /var/library";
    let found = q.find(text, 10);
    let got: Vec<&str> = found.iter().map(|r| &text[r.clone()]).collect();
    assert_eq!(got, ["rm -rf /var/lib", "RM -RF\n/VAR/LIB"], "{found:?}");
    // `perm` and `library` are other words.
    assert!(q.find("perm -rf /var/lib", 10).is_empty());
    assert!(q.find("rm -rf /var/library", 10).is_empty());
    // A query starting or ending with punctuation needs no boundary there.
    let q = Query::parse("/var/lib/").unwrap();
    assert_eq!(
        q.find("x/var/lib/y", 10),
        vec![std::ops::Range { start: 1, end: 10 }]
    );
    // At most `max`, in order.
    let q = Query::parse("ab").unwrap();
    assert_eq!(q.find("ab ab ab", 2), [0..2, 3..5]);
}

#[test]
fn snippets_show_the_match_in_its_line() {
    let text = "first line\nsecond: rm -rf /var/lib now\nthird";
    let q = Query::parse("rm -rf /var/lib").unwrap();
    let r = q.find(text, 1).remove(0);
    assert_eq!(
        snippet(text, r.clone(), 8),
        "…second: rm -rf /var/lib now thi…"
    );
    assert_eq!(snippet(text, r, 100), text.replace('\n', " "));
}
