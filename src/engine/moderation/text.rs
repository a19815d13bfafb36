//! The forms of a message the checks compare, built once per message: the normalised text
//! (links, regular expressions), and the canonical text — squeezed, then with every variant
//! spelling of a contact word replaced by the word itself (`薇信`, `V信`, `vx` → `微信`), so that
//! one banned phrase catches all its disguises.

use daachorse::{CharwiseDoubleArrayAhoCorasick, CharwiseDoubleArrayAhoCorasickBuilder, MatchKind};

use std::sync::LazyLock;

use regex::Regex;

use crate::engine::normalize::{normalize, squeeze, squeeze_marking_breaks};

/// An explicit web address, up to the next space or ideograph.
static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"https?://[!-~]*").expect("the address pattern is valid"));

/// The operator's table of variant spellings (`[variants]` in `moderation.toml`).
#[derive(Default)]
pub struct Variants {
    /// Spellings (squeezed) → index into `canonical`.
    automaton: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    canonical: Vec<String>,
}

impl std::fmt::Debug for Variants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variants")
            .field("canonical", &self.canonical)
            .finish_non_exhaustive()
    }
}

impl Variants {
    /// Builds the table from `(word, spellings)` pairs. Spellings are squeezed like messages; a
    /// spelling that squeezes to nothing or to its own word is ignored, and a spelling given for
    /// two words is an error.
    pub fn build<'a>(
        table: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Self, String> {
        let mut canonical = Vec::new();
        let mut spellings: Vec<(String, u32)> = Vec::new();
        for (word, variants) in table {
            let word_form = squeeze(word);
            if word_form.is_empty() {
                return Err(format!(
                    "variant word {word:?} has no letters, digits or characters"
                ));
            }
            let index = canonical.len() as u32;
            canonical.push(word_form.clone());
            for variant in variants {
                let form = squeeze(variant);
                if form.is_empty() || form == word_form {
                    continue;
                }
                if let Some((_, other)) = spellings.iter().find(|(s, _)| *s == form) {
                    if *other != index {
                        return Err(format!(
                            "variant {variant:?} is listed for both {:?} and {word:?}",
                            canonical[*other as usize]
                        ));
                    }
                    continue;
                }
                spellings.push((form, index));
            }
        }
        let automaton = if spellings.is_empty() {
            None
        } else {
            Some(
                CharwiseDoubleArrayAhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build_with_values(spellings)
                    .map_err(|e| format!("variant table: {e}"))?,
            )
        };
        Ok(Self {
            automaton,
            canonical,
        })
    }

    /// `squeezed` with every variant spelling replaced by its word. A spelling made of ASCII
    /// letters only counts where it is not part of a longer ASCII word (`vx` in `加vx123` and in
    /// `vx：abc`, not in `devx`); `breaks` are the offsets where the squeezing dropped something
    /// (see [`squeeze_marking_breaks`]).
    pub fn apply(&self, squeezed: &str, breaks: &[usize]) -> String {
        let Some(automaton) = &self.automaton else {
            return squeezed.to_owned();
        };
        let mut out = String::with_capacity(squeezed.len() + 8);
        let mut copied = 0;
        for found in automaton.leftmost_find_iter(squeezed) {
            let (start, end) = (found.start(), found.end());
            let spelling = &squeezed[start..end];
            if spelling.bytes().all(|b| b.is_ascii_alphabetic()) {
                let joined = |at: usize| breaks.binary_search(&at).is_err();
                let before = squeezed[..start].chars().next_back();
                let after = squeezed[end..].chars().next();
                if (before.is_some_and(|c| c.is_ascii_alphabetic()) && joined(start))
                    || (after.is_some_and(|c| c.is_ascii_alphabetic()) && joined(end))
                {
                    continue;
                }
            }
            out.push_str(&squeezed[copied..start]);
            out.push_str(&self.canonical[found.value() as usize]);
            copied = end;
        }
        out.push_str(&squeezed[copied..]);
        out
    }

    /// The canonical form of a word an operator wrote (a banned phrase): what a message
    /// containing it becomes.
    pub fn canonical(&self, word: &str) -> String {
        let (squeezed, breaks) = squeeze_marking_breaks(&normalize(word));
        self.apply(&squeezed, &breaks)
    }
}

/// One message, in the forms the checks compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// [`normalize`]d: full-width folded, lower case, simplified, spaces collapsed.
    pub normalized: String,
    /// Squeezed and with variant spellings replaced: letters, digits and ideographs only.
    pub canonical: String,
}

impl Prepared {
    pub fn new(text: &str, variants: &Variants) -> Self {
        let normalized = normalize(text);
        // Addresses are the links check's business; squeezed, their letters would read as
        // words (`mp.weixin.qq.com/s/abc` as `微信qqcomsabc`, a WeChat id).
        let without_urls = URL.replace_all(&normalized, " ");
        let (squeezed, breaks) = squeeze_marking_breaks(&without_urls);
        let canonical = variants.apply(&squeezed, &breaks);
        Self {
            normalized,
            canonical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Variants {
        let wechat = [
            "薇信".to_owned(),
            "威信".into(),
            "V信".into(),
            "vx".into(),
            "wx".into(),
        ];
        let qq = ["扣扣".to_owned(), "企鹅".into()];
        Variants::build([("微信", &wechat[..]), ("QQ", &qq[..])]).unwrap()
    }

    #[test]
    fn variant_spellings_become_their_word() {
        let v = table();
        assert_eq!(
            Prepared::new("加 薇 信 领资料", &v).canonical,
            "加微信领资料"
        );
        assert_eq!(
            Prepared::new("加V❤信：abc123", &v).canonical,
            "加微信abc123"
        );
        assert_eq!(
            Prepared::new("+VX 13812345678", &v).canonical,
            "微信13812345678"
        );
        assert_eq!(
            Prepared::new("扣扣：一二三四五六七", &v).canonical,
            "qq1234567"
        );
        assert_eq!(Prepared::new("加威信", &v).canonical, "加微信");
        // Inside a longer ASCII word an ASCII spelling is left alone.
        assert_eq!(Prepared::new("devx tools", &v).canonical, "devxtools");
        assert_eq!(Prepared::new("加vx：kj123", &v).canonical, "加微信kj123");
        assert_eq!(Prepared::new("w x：abc", &v).canonical, "微信abc");
        assert_eq!(v.canonical("加 vx"), "加微信");
        let p = Prepared::new("看 https://mp.weixin.qq.com/s/abc 加vx", &v);
        assert_eq!(p.canonical, "看加微信");
        assert!(p.normalized.contains("mp.weixin.qq.com"));
    }

    #[test]
    fn a_spelling_listed_for_two_words_is_refused() {
        let a = ["vx".to_owned()];
        let err = Variants::build([("微信", &a[..]), ("qq", &a[..])]).unwrap_err();
        assert!(err.contains("vx"), "{err}");
        assert!(Variants::build([("！", &a[..])]).is_err());
    }

    #[test]
    fn no_table_changes_nothing_but_squeezing() {
        let v = Variants::default();
        let p = Prepared::new("加 微 信", &v);
        assert_eq!(p.canonical, "加微信");
        assert_eq!(p.normalized, "加 微 信");
    }
}
