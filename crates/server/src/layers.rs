//! The gateway's imports run one way: `routes` → domains → `api` (the HTTP
//! toolkit) and `store`. This test reads the source and fails on an import
//! against that direction:
//!
//! - `api/` names only itself and `ids` (no domain, no `state`, no
//!   `routes`);
//! - `store/` names only itself and `ids`, and of `keys` only the key
//!   hierarchy the SQLite file is encrypted under ([`KEY_HIERARCHY`]);
//! - no module but `app` (and `lib.rs`) names `routes`.
//!
//! Test code (`tests.rs` and `*_tests.rs` files, `tests/` directories,
//! `#[cfg(test)]` items) may use anything.

use std::path::{Path, PathBuf};

/// What `store/` may use of `keys`: the root key, keyring and data keys
/// that open the SQLCipher file. The rest of `keys` (rotation, the sweep
/// over every domain's wrapped keys) is a domain above the store.
const KEY_HIERARCHY: &[&str] = &["Keyring", "DataKey", "KeyError", "Purpose"];

/// Every `.rs` file under `dir`, test files left out.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tests") {
                    todo.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().ends_with("tests.rs"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A file's non-test code, comments removed: `#[cfg(test)]` items (inline
/// test modules included) are left out.
fn code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if t == "#[cfg(test)]" {
            // Skip the item (an inline test module too): up to its `;`, or
            // until its braces close.
            i += 1;
            let mut depth = 0i32;
            while i < lines.len() {
                let l = lines[i].split("//").next().unwrap_or("");
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                i += 1;
                if depth <= 0 && (l.trim_end().ends_with(';') || l.trim_end().ends_with('}')) {
                    break;
                }
            }
            continue;
        }
        let t = t.split("//").next().unwrap_or("");
        out.push_str(t);
        out.push('\n');
        i += 1;
    }
    out
}

/// Every path the code names through `crate::`, as its segments (a
/// `crate::{a, b::c}` group gives one path per member).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `$crate::` (in macros) is the crate too; `jumpgate_crate::` is not.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let segs = segments(member.trim());
                if !segs.is_empty() {
                    out.push(segs);
                }
            }
        } else {
            out.push(segments(rest));
        }
    }
    out
}

fn segments(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            // `keys::{A, B}`: the members' first segments, as one.
            let end = group.find('}').unwrap_or(group.len());
            let members: Vec<&str> = group[..end]
                .split(',')
                .map(|m| m.trim().split("::").next().unwrap_or(""))
                .filter(|m| !m.is_empty())
                .collect();
            segs.push(members.join(","));
            return segs;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            return segs;
        }
        segs.push(rest[..end].to_owned());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return segs,
        }
    }
}

/// Why a `crate::` path is against the layers, if it is.
fn wrong_way(layer: &str, path: &[String]) -> Option<String> {
    let first = path.first().map_or("", String::as_str);
    let ok = match layer {
        "api" => matches!(first, "api" | "ids"),
        "store" => match first {
            "store" | "ids" => true,
            "keys" => path.get(1).is_some_and(|items| {
                items
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .all(|i| KEY_HIERARCHY.contains(&i))
            }),
            _ => false,
        },
        _ => first != "routes",
    };
    (!ok).then(|| format!("crate::{}", path.join("::")))
}

fn violations(layer: &str, dir: &Path) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    for file in sources(dir) {
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        if layer == "all"
            && (rel == "app.rs"
                || rel == "lib.rs"
                || rel == "routes.rs"
                || rel.starts_with("routes/"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for path in crate_paths(&code(&text)) {
            if let Some(v) = wrong_way(layer, &path) {
                out.push(format!("{rel}: {v}"));
            }
        }
    }
    out
}

#[test]
fn api_and_store_import_no_domain_and_only_app_imports_routes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = violations("api", &src.join("api"));
    found.extend(violations("store", &src.join("store")));
    found.extend(violations("all", &src));
    assert!(
        found.is_empty(),
        "imports against the layers (routes → domains → api, store):\n{}",
        found.join("\n")
    );
}

/// The scanner sees what it must: a domain path, one inside a group, a
/// `keys` item outside the key hierarchy, and not test code or comments.
#[test]
fn the_layer_check_catches_imports_the_wrong_way() {
    let text = "use crate::api::ApiError;\n\
                use crate::{ids, rbac::Subject};\n\
                // crate::identity in a comment\n\
                fn f() { crate::events::verify(); }\n\
                use crate::keys::{DataKey, Keyring};\n\
                use crate::keys::sweep::SweepError;\n\
                #[cfg(test)]\n\
                fn only_in_tests() {\n\
                    crate::schema::SCHEMA;\n\
                }\n\
                #[cfg(test)]\n\
                use crate::identity::Thing;\n\
                fn after() { crate::sessions::x(); }\n\
                #[cfg(test)]\n\
                mod tests {\n\
                use crate::vault::Secret;\n\
                }\n";
    let found: Vec<String> = crate_paths(&code(text))
        .iter()
        .filter_map(|p| wrong_way("store", p))
        .collect();
    assert_eq!(
        found,
        [
            "crate::api::ApiError",
            "crate::rbac::Subject",
            "crate::events::verify",
            "crate::keys::sweep::SweepError",
            "crate::sessions::x"
        ]
    );
    let api: Vec<String> = crate_paths(&code(text))
        .iter()
        .filter_map(|p| wrong_way("api", p))
        .collect();
    assert!(
        api.contains(&"crate::keys::DataKey,Keyring".to_owned()),
        "{api:?}"
    );
    // Only `app` assembles the routes.
    assert!(wrong_way("all", &["routes".to_owned(), "router".to_owned()]).is_some());
    assert!(wrong_way("all", &["rbac".to_owned()]).is_none());
}
