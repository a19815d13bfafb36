//! Turning a configuration that does not load into a message an operator can act on: the file
//! and line of the key, and the key they probably meant (`shutdwon_grace_secs` → did you mean
//! `shutdown_grace_secs`?).

use super::*;

/// figment's errors as an operator reads them: the key as written (no profile prefix), the file
/// and line it is on (or the environment variable), and for an unknown key the known key nearest
/// to it.
pub(super) fn describe_load_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let place = match e.metadata.as_ref() {
                Some(m) => match &m.source {
                    Some(figment::Source::File(path)) => match line_of(path, &e.path) {
                        Some(line) => format!(" ({}:{line})", path.display()),
                        None => format!(" ({})", path.display()),
                    },
                    _ if m.name.contains("environment") => format!(
                        " (environment variable TRUMPET_{})",
                        e.path.join("__").to_uppercase()
                    ),
                    _ => String::new(),
                },
                None => String::new(),
            };
            match &e.kind {
                figment::error::Kind::UnknownField(found, expected) => {
                    let hint = nearest(found, expected)
                        .map(|known| format!(": did you mean `{known}`?"))
                        .unwrap_or_else(|| format!("; known here: {}", expected.join(", ")));
                    format!("unknown setting `{key}`{place}{hint}")
                }
                kind => format!("{kind}: `{key}`{place}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The 1-based line of `path`'s file where `key` (the last element, under its table) is set.
pub(super) fn line_of(path: &Path, key: &[String]) -> Option<usize> {
    let (name, tables) = key.split_last()?;
    // Array indices (`bots.0`) are not written in the file: match the table by its names.
    let table: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| t.parse::<usize>().is_err())
        .collect();
    let table = table.join(".");
    let text = std::fs::read_to_string(path).ok()?;
    let mut current = String::new();
    let mut anywhere = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            continue;
        }
        let sets = line
            .strip_prefix(name.as_str())
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if sets {
            if current == table {
                return Some(number + 1);
            }
            anywhere.get_or_insert(number + 1);
        }
    }
    anywhere
}

/// The known key closest to `found` by edit distance, when it is close enough to be a typo.
pub(super) fn nearest<'a>(found: &str, known: &[&'a str]) -> Option<&'a str> {
    let found: Vec<char> = found.chars().collect();
    known
        .iter()
        .map(|k| (edit_distance(&found, &k.chars().collect::<Vec<_>>()), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Levenshtein distance: insertions, deletions and substitutions.
pub(super) fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
