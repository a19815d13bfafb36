//! The shape of the house (issue 17, docs/architecture in the README): the top-level modules
//! sit in layers and a module uses only modules of lower layers, or of its own layer without a
//! circle. Read from `src/` (test code excluded): `crate::<module>` wherever it is written.
//!
//! The edges that break the rule today are listed in [`STILL_TO_REMOVE`]. A new breaking edge
//! fails the test, and so does a listed edge that is gone (take it off the list): the list only
//! shrinks, and when it is empty the house runs one way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module's layer, lowest first: `domain` uses nothing; `engine` (pure rules)
/// only `domain`; `scripts` loads files into the engine's rules; `store` keeps domain records;
/// `outbound` says where the service may fetch from; `wire` knows the peers' formats and holds
/// their clients; delivery (`outbox`, then `schedule`, which plans into it); the runtime's
/// stateful services; `channels`, the handlers peers talk to; `http`; the wiring (`app`,
/// `config`, `telemetry`); the command line.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("engine", 1),
    ("scripts", 2),
    ("store", 3),
    ("outbound", 3),
    ("wire", 4),
    ("outbox", 5),
    ("schedule", 6),
    ("runtime", 7),
    ("channels", 8),
    ("http", 9),
    ("app", 10),
    ("config", 10),
    ("telemetry", 10),
    ("cli", 11),
];

/// Modules that may use only the modules listed (beyond the layering): the pure core.
const ONLY: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("engine", &["domain"]),
    ("store", &["domain"]),
];

/// The transports are wired by these alone.
const USE_HTTP: &[&str] = &["app", "cli"];

/// Edges that break the rules today, to be taken out by issue 17 (each a `from → to`).
const STILL_TO_REMOVE: &[(&str, &str)] = &[];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// `crate::<module>` uses of each top-level module, from its source outside test code.
fn module_uses(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(src) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "tests.rs" {
            continue;
        }
        let relative = path.strip_prefix(src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = without_tests_and_comments(&std::fs::read_to_string(&path).unwrap());
        for (at, _) in code.match_indices("crate::") {
            let used: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !used.is_empty() && used != top {
                uses.entry(top.clone()).or_default().insert(used);
            }
        }
        uses.entry(top).or_default();
    }
    uses
}

/// `text` without `//` comments and without `#[cfg(test)] mod … { … }` blocks.
fn without_tests_and_comments(text: &str) -> String {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut kept = String::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        if !after.trim_start().starts_with("mod ") {
            // A single test-only item: kept (its uses are few and harmless to count).
            kept.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let Some(open) = after.find('{') else {
            rest = "";
            break;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    kept.push_str(rest);
    kept
}

/// The modules on a circle through `from → to` within the same layer: whether `to` reaches
/// `from` through modules of that layer.
fn closes_a_circle(uses: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let layer = |m: &str| layer_of(m);
    let mut seen = BTreeSet::new();
    let mut stack = vec![to.to_owned()];
    while let Some(at) = stack.pop() {
        if at == from {
            return true;
        }
        if !seen.insert(at.clone()) {
            continue;
        }
        for next in uses.get(&at).into_iter().flatten() {
            if layer(next) == layer(from) {
                stack.push(next.clone());
            }
        }
    }
    false
}

fn layer_of(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
}

#[test]
fn the_modules_depend_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let uses = module_uses(&src);
    let unplaced: Vec<&String> = uses.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "give these top-level modules a layer in LAYERS: {unplaced:?}"
    );
    let mut breaking = BTreeSet::new();
    for (from, used) in &uses {
        for to in used {
            let (Some(up), Some(down)) = (layer_of(from), layer_of(to)) else {
                continue;
            };
            let outside_only = ONLY
                .iter()
                .any(|(module, allowed)| module == from && !allowed.contains(&to.as_str()));
            let wires_http = to == "http" && !USE_HTTP.contains(&from.as_str());
            if up < down
                || (up == down && closes_a_circle(&uses, from, to))
                || outside_only
                || wires_http
            {
                breaking.insert((from.as_str(), to.as_str()));
            }
        }
    }
    let listed: BTreeSet<(&str, &str)> = STILL_TO_REMOVE.iter().copied().collect();
    let new: Vec<_> = breaking.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&breaking).collect();
    assert!(
        new.is_empty(),
        "these uses go up a layer or close a circle: {new:?}"
    );
    assert!(
        gone.is_empty(),
        "these listed uses are gone: take them off STILL_TO_REMOVE: {gone:?}"
    );
}

#[test]
fn test_code_and_comments_are_not_counted() {
    let text = "use crate::domain::X; // see crate::http\n#[cfg(test)]\nmod tests {\n    use crate::app::Y;\n    fn f() { {} }\n}\nuse crate::store::Z;\n";
    let code = without_tests_and_comments(text);
    assert!(code.contains("crate::domain") && code.contains("crate::store"));
    assert!(
        !code.contains("crate::http") && !code.contains("crate::app"),
        "{code}"
    );
}

/// One unit-test convention: `#[cfg(test)] mod tests` at the end of a module's file, or
/// `tests.rs` beside the `mod.rs` of a folder module — no `#[path]` detours, no `*_tests.rs`.
#[test]
fn unit_tests_follow_one_convention() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut strays = Vec::new();
    for path in rust_files(&src) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let relative = path.strip_prefix(&src).unwrap().display().to_string();
        if name.ends_with("_tests.rs") {
            strays.push(format!("{relative}: a *_tests.rs file"));
        }
        if name == "tests.rs" && !path.with_file_name("mod.rs").exists() {
            strays.push(format!("{relative}: tests.rs outside a folder module"));
        }
        if std::fs::read_to_string(&path).unwrap().contains("#[path") {
            strays.push(format!("{relative}: a #[path] attribute"));
        }
    }
    assert!(
        strays.is_empty(),
        "unit tests off the convention: {strays:?}"
    );
}
