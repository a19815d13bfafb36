//! Editing bot-scripts through the admin API (the console's 话术 page): read a file as it is in
//! force, and write a new text only after the whole set of scripts, with it in place, passes
//! the same checks as `trumpet check` — an invalid edit is refused with `file:line:column` and
//! nothing changes. A valid one is written atomically (a temporary file renamed over the old)
//! and loaded at once; where the directory held no scripts yet, the shipped files are written
//! there first (as `trumpet init` does), so the edit is kept beside them. An edit based on an
//! older text than the file now holds is refused as stale rather than silently undoing someone
//! else's change.

use std::path::Path;

use serde::Serialize;
use sha1::{Digest, Sha1};

use super::live::LiveScripts;
use super::{DEFAULT_FILES, ScriptError, Scripts, holds_scripts, write_defaults};

/// Lines of context around each change in a diff.
const DIFF_CONTEXT: usize = 3;

/// One bot-scripts file as in force.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptFile {
    /// As in [`DEFAULT_FILES`]: `keywords.toml`, `content/queue.toml`.
    pub name: String,
    pub content: String,
    /// SHA-1 of `content`, hex: give it back with an edit to detect a change made meanwhile.
    pub sha: String,
    /// Whether the text comes from the scripts directory (false: the built-in copy, or an
    /// optional file the directory does not have, shown empty).
    pub from_dir: bool,
}

/// What an edit changed.
#[derive(Debug, Clone, Serialize)]
pub struct Edited {
    pub name: String,
    pub sha_before: String,
    pub sha: String,
    /// A unified diff of the change (empty when the text was the same).
    pub diff: String,
    pub lines_added: usize,
    pub lines_removed: usize,
}

/// Why an edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0:?} is not a bot-scripts file; the files are: {files}", files = file_names().join(", "))]
    UnknownFile(String),
    #[error(
        "the file changed since it was read (it is now {current}); read it again and redo the edit"
    )]
    Stale { current: String },
    #[error("{0}")]
    Invalid(ScriptError),
    #[error("cannot write the scripts directory: {0}")]
    Io(String),
}

fn file_names() -> Vec<&'static str> {
    DEFAULT_FILES.iter().map(|(name, _)| *name).collect()
}

fn sha(text: &str) -> String {
    hex::encode(Sha1::digest(text.as_bytes()))
}

/// Every bot-scripts file as in force, in [`DEFAULT_FILES`] order.
pub fn files(live: &LiveScripts) -> Vec<ScriptFile> {
    DEFAULT_FILES
        .iter()
        .filter_map(|(name, _)| read(live, name).ok())
        .collect()
}

/// The file `name` as in force: the directory's copy when it holds scripts, else the built-in
/// one.
pub fn read(live: &LiveScripts, name: &str) -> Result<ScriptFile, EditError> {
    let (_, embedded) = DEFAULT_FILES
        .iter()
        .find(|(file, _)| *file == name)
        .ok_or_else(|| EditError::UnknownFile(name.to_owned()))?;
    let dir = live.dir();
    let (content, from_dir) = if holds_scripts(dir) {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => (text, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), false),
            Err(e) => return Err(EditError::Io(format!("{name}: {e}"))),
        }
    } else {
        ((*embedded).to_owned(), false)
    };
    Ok(ScriptFile {
        name: name.to_owned(),
        sha: sha(&content),
        content,
        from_dir,
    })
}

/// Checks the scripts with `content` as `name` and, when they pass, writes it and loads the
/// new version. `base_sha` is the `sha` the edit started from (refused as stale when the file
/// holds something else now). Blocking.
pub fn write(
    live: &LiveScripts,
    name: &str,
    content: &str,
    base_sha: Option<&str>,
) -> Result<Edited, EditError> {
    let _one_at_a_time = live.edits.lock().unwrap_or_else(|p| p.into_inner());
    let before = read(live, name)?;
    if base_sha.is_some_and(|base| base != before.sha) {
        return Err(EditError::Stale {
            current: before.sha,
        });
    }
    let dir = live.dir();
    Scripts::load_with(dir, Some((name, content))).map_err(EditError::Invalid)?;
    let diff = similar::TextDiff::from_lines(before.content.as_str(), content);
    let (mut added, mut removed) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    let edited = Edited {
        name: name.to_owned(),
        sha_before: before.sha.clone(),
        sha: sha(content),
        diff: diff
            .unified_diff()
            .context_radius(DIFF_CONTEXT)
            .header(&format!("a/{name}"), &format!("b/{name}"))
            .to_string(),
        lines_added: added,
        lines_removed: removed,
    };
    if edited.sha == before.sha && before.from_dir {
        return Ok(edited);
    }
    if !holds_scripts(dir) {
        write_defaults(dir).map_err(|e| EditError::Io(format!("{}: {e}", dir.display())))?;
    }
    write_atomically(&dir.join(name), content)
        .map_err(|e| EditError::Io(format!("{name}: {e}")))?;
    // Checked above with the same files; a failure here means another file changed on disk in
    // between, and the status says which.
    live.reload().map_err(EditError::Invalid)?;
    Ok(edited)
}

/// Writes `text` to a temporary file beside `path` and renames it over `path`: a reader (the
/// watcher) sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Not `.toml`: the watcher must not read the temporary file.
    let temporary = path.with_extension("toml.edit-tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_in(dir: &Path) -> LiveScripts {
        LiveScripts::new(Scripts::load(dir).unwrap(), dir)
    }

    #[test]
    fn an_invalid_edit_changes_nothing_and_a_valid_one_takes_effect() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bot-scripts");
        let live = live_in(&dir);
        let keywords = read(&live, "keywords.toml").unwrap();
        assert!(!keywords.from_dir, "the built-in copy before any edit");

        let broken = format!("{}\n[[rule]]\nid = \"x\"\n", keywords.content);
        let Err(EditError::Invalid(e)) = write(&live, "keywords.toml", &broken, None) else {
            panic!("a rule without patterns is refused");
        };
        assert!(e.file.ends_with("keywords.toml"), "{e}");
        assert!(e.line > 0, "{e}");
        assert!(!dir.exists(), "nothing was written");

        let renamed = keywords.content.replacen("发票", "开票", 1);
        let edited = write(&live, "keywords.toml", &renamed, Some(&keywords.sha)).unwrap();
        assert_eq!((edited.lines_added, edited.lines_removed), (1, 1));
        assert!(
            edited.diff.contains("+") && edited.diff.contains("开票"),
            "{}",
            edited.diff
        );
        // Written beside the shipped files, and in force.
        assert!(dir.join("messages.toml").exists());
        assert_eq!(read(&live, "keywords.toml").unwrap().content, renamed);
        assert_eq!(live.status().version, 2);
        assert!(live.status().from_dir);

        // An edit from the old text is stale; a file outside the set is unknown.
        assert!(matches!(
            write(
                &live,
                "keywords.toml",
                &keywords.content,
                Some(&keywords.sha)
            ),
            Err(EditError::Stale { .. })
        ));
        assert!(matches!(
            write(&live, "../trumpet.toml", "", None),
            Err(EditError::UnknownFile(_))
        ));
    }
}
