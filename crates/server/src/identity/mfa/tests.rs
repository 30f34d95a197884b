use super::*;

/// The RFC 4226 / RFC 6238 SHA-1 test secret.
fn rfc_secret() -> TotpSecret {
    TotpSecret::from_bytes(b"12345678901234567890").unwrap()
}

#[test]
fn rfc6238_sha1_vectors() {
    // RFC 6238 Appendix B gives 8 digits; 6 digits are the last 6 of those.
    let vectors: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    let s = rfc_secret();
    for (t, eight) in vectors {
        assert_eq!(code_at(&s, t), &eight[2..], "T = {t}");
    }
}

#[test]
fn rfc4226_hotp_vectors() {
    // RFC 4226 Appendix D: HOTP for counters 0..9 (step n starts at 30 n).
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    let s = rfc_secret();
    for (counter, code) in expected.iter().enumerate() {
        let t = counter as u64 * STEP_SECS;
        assert_eq!(code_at(&s, t), *code, "counter {counter}");
        // Any second inside the step gives the same code.
        assert_eq!(code_at(&s, t + STEP_SECS - 1), *code);
    }
}

const T: u64 = 1_111_111_111;
const STEP: u64 = T / STEP_SECS;

#[test]
fn verify_accepts_the_skew_window_and_returns_the_step() {
    let s = rfc_secret();
    assert_eq!(verify(&s, &code_at(&s, T), T, None), Some(STEP));
    assert_eq!(verify(&s, &code_at(&s, T - 30), T, None), Some(STEP - 1));
    assert_eq!(verify(&s, &code_at(&s, T + 30), T, None), Some(STEP + 1));
    assert_eq!(verify(&s, &code_at(&s, T - 60), T, None), None);
    assert_eq!(verify(&s, &code_at(&s, T + 60), T, None), None);
    // Spaces as apps display them, and around the code, are tolerated.
    let c = code_at(&s, T);
    let spaced = format!(" {} {} ", &c[..3], &c[3..]);
    assert_eq!(verify(&s, &spaced, T, None), Some(STEP));
}

#[test]
fn verify_rejects_wrong_codes_and_other_secrets() {
    let s = rfc_secret();
    let window: Vec<String> = [T - 30, T, T + 30]
        .iter()
        .map(|&t| code_at(&s, t))
        .collect();
    let mut wrong = code_at(&s, T).parse::<u32>().unwrap();
    while window.contains(&format_code(wrong)) {
        wrong = (wrong + 1) % 1_000_000;
    }
    assert_eq!(verify(&s, &format_code(wrong), T, None), None);
    let other = TotpSecret::from_bytes(&[7u8; 20]).unwrap();
    assert_ne!(code_at(&other, T), code_at(&s, T));
    assert_eq!(verify(&other, &code_at(&s, T), T, None), None);
}

#[test]
fn verify_rejects_malformed_input_before_computing() {
    let s = rfc_secret();
    let c = code_at(&s, T);
    for bad in [
        String::new(),
        "      ".into(),
        c[..5].to_owned(),
        format!("{c}0"),
        format!("0{c}"),
        format!("{}a", &c[..5]),
        format!("+{}", &c[..5]),
        format!("{}-{}", &c[..3], &c[3..]),
        // Non-ASCII digits (Arabic-Indic) parse as digits in some APIs.
        "٠١٢٣٤٥".into(),
        format!("{c}{}", " ".repeat(40)),
    ] {
        assert_eq!(parse_code(&bad), None, "{bad:?}");
        assert_eq!(verify(&s, &bad, T, None), None, "{bad:?}");
    }
    assert_eq!(parse_code(" 012 345 "), Some(*b"012345"));
}

#[test]
fn verify_refuses_replays() {
    let s = rfc_secret();
    let c = code_at(&s, T);
    let used = verify(&s, &c, T, None).unwrap();
    assert_eq!(verify(&s, &c, T, Some(used)), None, "same code again");
    assert_eq!(
        verify(&s, &c, T + 10, Some(used)),
        None,
        "later in the step"
    );
    // An older step is refused once a newer one was used...
    assert_eq!(verify(&s, &code_at(&s, T - 30), T, Some(used)), None);
    // ...while the next step is still fine.
    assert_eq!(
        verify(&s, &code_at(&s, T + 30), T, Some(used)),
        Some(STEP + 1)
    );
    assert_eq!(verify(&s, &c, T, Some(STEP - 1)), Some(STEP));
}

#[test]
fn verify_binds_a_code_shared_by_two_steps_to_the_later_one() {
    // For the RFC secret, steps 37079356 and 37079357 share a code (found by
    // search; a one-in-a-million event). Binding it to the earlier step would
    // let it be replayed against the later one.
    let s = rfc_secret();
    let first = 37_079_356u64;
    let t = first * STEP_SECS;
    assert_eq!(code_at(&s, t), "186519");
    assert_eq!(code_at(&s, t + STEP_SECS), "186519");
    assert_eq!(verify(&s, "186519", t, None), Some(first + 1));
    assert_eq!(verify(&s, "186519", t + STEP_SECS, Some(first + 1)), None);
    // With the later step already used, the earlier one is stale too.
    assert_eq!(verify(&s, "186519", t, Some(first)), Some(first + 1));
}

#[test]
fn verify_at_the_edges_of_time_does_not_overflow() {
    let s = rfc_secret();
    assert_eq!(verify(&s, &code_at(&s, 0), 0, None), Some(0));
    assert_eq!(verify(&s, &code_at(&s, 30), 0, None), Some(1));
    let end = u64::MAX;
    assert_eq!(
        verify(&s, &code_at(&s, end), end, None),
        Some(end / STEP_SECS)
    );
}

#[test]
fn secrets_and_base32() {
    // RFC 4648 §10 vectors.
    for (input, out) in [
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ] {
        assert_eq!(base32(input.as_bytes()), out);
    }
    assert_eq!(rfc_secret().base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");

    assert!(TotpSecret::from_bytes(&[0; 19]).is_none());
    assert!(TotpSecret::from_bytes(&[0; 21]).is_none());
    let g = TotpSecret::generate();
    assert_eq!(g.as_bytes().len(), 20);
    assert_ne!(g.as_bytes(), TotpSecret::generate().as_bytes());
    let back = TotpSecret::from_bytes(g.as_bytes()).unwrap();
    assert_eq!(back.as_bytes(), g.as_bytes());

    let dbg = format!("{:?}", rfc_secret());
    assert_eq!(dbg, "TotpSecret(MASKED)");
    assert!(!dbg.contains("GEZDG") && !dbg.contains("49"));
}

#[test]
fn otpauth_url_is_percent_encoded() {
    let s = rfc_secret();
    assert_eq!(
        s.otpauth_url("Acme Corp", "alice@example.com"),
        "otpauth://totp/Acme%20Corp:alice%40example.com\
         ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp\
         &algorithm=SHA1&digits=6&period=30"
    );
    // Characters that would change the URI's structure are escaped too.
    let url = s.otpauth_url("A&B:C", "x?y#z é");
    assert!(
        url.starts_with("otpauth://totp/A%26B%3AC:x%3Fy%23z%20%C3%A9?secret="),
        "{url}"
    );
    assert!(url.contains("&issuer=A%26B%3AC&"), "{url}");
    assert_eq!(
        s.otpauth_url("", "bob"),
        "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
         &algorithm=SHA1&digits=6&period=30"
    );
}

/// Reads back the module grid (quiet zone included) from an SVG made by
/// [`qr_svg`]: the side from the viewBox, dark cells from the path runs.
fn svg_grid(svg: &str) -> (usize, Vec<Vec<bool>>) {
    let vb = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
    let size: usize = vb.split(' ').next().unwrap().parse().unwrap();
    let mut grid = vec![vec![false; size]; size];
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    for run in d.split('M').filter(|r| !r.is_empty()) {
        // `x yh{n}v1h-{n}z`
        let (xy, rest) = run.split_once('h').unwrap();
        let (x, y) = xy.split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        let n: usize = rest.split_once('v').unwrap().0.parse().unwrap();
        assert_eq!(rest, format!("{n}v1h-{n}z"));
        for cell in &mut grid[y][x..x + n] {
            assert!(!*cell, "runs overlap at {x},{y}");
            *cell = true;
        }
    }
    (size, grid)
}

#[test]
fn qr_svg_renders_the_code_with_quiet_zone() {
    let url = rfc_secret().otpauth_url("Acme Corp", "alice@example.com");
    let svg = qr_svg(&url);
    assert!(svg.starts_with("<svg "), "{}", &svg[..40]);
    assert!(svg.ends_with("</svg>"));
    assert!(svg.contains(r##"fill="#000""##) && svg.contains(r##"fill="#fff""##));
    assert_eq!(svg, qr_svg(&url), "deterministic");

    let (size, grid) = svg_grid(&svg);
    // A version-v symbol is 17 + 4v modules wide, plus 4 quiet modules a side.
    let width = size - 8;
    assert!(width >= 21 && (width - 17) % 4 == 0, "width {width}");
    // ~130 bytes need version 6 or more even at the lowest error correction.
    assert!(url.len() > 120 && width >= 17 + 4 * 6, "width {width}");
    // The quiet zone is light.
    for (y, row) in grid.iter().enumerate() {
        for (x, &dark) in row.iter().enumerate() {
            let inside = (4..4 + width).contains(&x) && (4..4 + width).contains(&y);
            assert!(inside || !dark, "dark quiet-zone module at {x},{y}");
        }
    }
    // The three finder patterns: a dark 7x7 ring, a light ring, a dark 3x3 core.
    for (ox, oy) in [(4, 4), (4 + width - 7, 4), (4, 4 + width - 7)] {
        for dy in 0..7 {
            for dx in 0..7 {
                let ring = dx.min(dy).min(6 - dx).min(6 - dy);
                assert_eq!(grid[oy + dy][ox + dx], ring != 1, "finder at {ox},{oy}");
            }
        }
    }
    // And every module is where the encoder put it.
    let code = qrcode::QrCode::new(url.as_bytes()).unwrap();
    let colors = code.to_colors();
    for y in 0..width {
        for x in 0..width {
            let dark = colors[y * width + x] == qrcode::Color::Dark;
            assert_eq!(grid[y + 4][x + 4], dark, "module {x},{y}");
        }
    }
}

#[test]
fn qr_svg_size_follows_the_data_length() {
    // Byte mode at error correction M: version 1 holds 14 bytes, version 2 26.
    let side = |n: usize| svg_grid(&qr_svg(&"a".repeat(n))).0;
    assert_eq!(side(14), 21 + 8);
    assert_eq!(side(15), 25 + 8);
    assert_eq!(side(26), 25 + 8);
    assert_eq!(side(27), 29 + 8);
    let too_long = qr_svg(&"a".repeat(5000));
    assert!(too_long.starts_with("<svg") && too_long.contains("too long"));
}

#[test]
fn recovery_codes_are_unique_and_well_formed() {
    let codes = generate_recovery_codes();
    assert_eq!(codes.len(), RECOVERY_CODES);
    let mut seen = std::collections::HashSet::new();
    for c in &codes {
        assert!(seen.insert(c.clone()), "duplicate {c}");
        let b = c.as_bytes();
        assert_eq!(b.len(), 14, "{c}");
        assert_eq!((b[4], b[9]), (b'-', b'-'), "{c}");
        let chars: String = c.chars().filter(|&ch| ch != '-').collect();
        assert!(
            chars.bytes().all(|ch| RECOVERY_ALPHABET.contains(&ch)),
            "{c}"
        );
        assert!(!chars.contains(['I', 'L', 'O', 'U']));
        assert!(looks_like_recovery_code(c));
        assert_eq!(normalize_recovery_code(c), chars);
    }
    // Every character of the alphabet turns up: all 5 bits of each position
    // are random (12,000 draws; missing one by chance is ~1e-163).
    let mut counts = [0u32; 32];
    for _ in 0..100 {
        for c in generate_recovery_codes() {
            for ch in c.bytes().filter(|&ch| ch != b'-') {
                let i = RECOVERY_ALPHABET.iter().position(|&a| a == ch).unwrap();
                counts[i] += 1;
            }
        }
    }
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
}

#[test]
fn recovery_codes_encode_60_bits_most_significant_first() {
    assert_eq!(recovery_code_from_bits(0), "0000-0000-0000");
    assert_eq!(recovery_code_from_bits(u64::MAX), "ZZZZ-ZZZZ-ZZZZ");
    assert_eq!(recovery_code_from_bits(1 << 59), "G000-0000-0000");
    assert_eq!(
        recovery_code_from_bits(1 << 60),
        "0000-0000-0000",
        "bit 60 unused"
    );
    assert_eq!(
        recovery_code_from_bits(0x0123_4567_89AB_CDEF),
        "28T5-CY4T-QKFF"
    );
}

#[test]
fn recovery_code_lists_never_repeat_a_code() {
    // A source that repeats itself: duplicates are skipped, not handed out.
    let mut n = 0u64;
    let codes = distinct_codes(|| {
        n += 1;
        recovery_code_from_bits(n / 3)
    });
    assert_eq!(codes.len(), RECOVERY_CODES);
    let unique: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), RECOVERY_CODES);
}

#[test]
fn recovery_code_normalization_and_hash() {
    let canonical = "7KQ0-M1XW-3FHD";
    let h = recovery_code_hash(canonical);
    assert_eq!(normalize_recovery_code(canonical), "7KQ0M1XW3FHD");
    assert_eq!(
        h,
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"7KQ0M1XW3FHD").as_ref()
    );
    for variant in [
        "7kq0-m1xw-3fhd",
        "7KQ0M1XW3FHD",
        "7kq0 m1xw 3fhd",
        "7KQO-MIXW-3FHD",
        "7kqo-mlxw-3fhd",
        " 7KQ0-M1XW-3FHD\n",
    ] {
        assert_eq!(recovery_code_hash(variant), h, "{variant}");
    }
    assert_ne!(recovery_code_hash("7KQ0-M1XW-3FHE"), h);
}

#[test]
fn recovery_codes_are_told_apart_from_totp_codes() {
    assert!(looks_like_recovery_code("7KQ2-M9XW-3FHD"));
    assert!(looks_like_recovery_code("7kq2m9xw3fhd"));
    assert!(looks_like_recovery_code(" 7kq2 m9xw 3fhd "));
    assert!(!looks_like_recovery_code("123456"));
    assert!(!looks_like_recovery_code("123 456"));
    assert!(!looks_like_recovery_code(""));
    assert!(!looks_like_recovery_code("7KQ2-M9XW-3FH"), "11 characters");
    assert!(
        !looks_like_recovery_code("7KQ2-M9XW-3FHDX"),
        "13 characters"
    );
    assert!(
        !looks_like_recovery_code("7KQ2-M9XW-3FHU"),
        "U is not in the alphabet"
    );
    assert!(!looks_like_recovery_code("7KQ2-M9XW-3FH!"));
}
