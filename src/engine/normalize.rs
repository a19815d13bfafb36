//! Text normalisation for matching: what members type and what operators write are brought to
//! one form, so that `ＦＡＰＩＡＯ`, `Fapiao` and `fa\u{200b}piao` all match `fapiao`.
//!
//! Steps: Unicode NFKC (full-width letters and digits become ASCII, `①` becomes `1`, the
//! ideographic space becomes a space), invisible characters removed (zero-width spaces and
//! joiners, word joiner, BOM, soft hyphen), case folded, runs of white space collapsed to one
//! space, trimmed, and traditional characters made simplified, character by character (OpenCC's
//! character table, through `opencc-fmmseg`), so that `發票` matches `发票`. Keyword matching and
//! spam checks use it. Character by character rather than by phrase: patterns and messages go
//! through the same mapping, so they agree, and a table look-up per character keeps
//! normalisation within a microsecond or two.
//!
//! [`squeeze`] goes further for spam checks: on top of [`normalize`] it drops everything
//! spammers put between characters (spaces, punctuation, symbols, emoji) and reads runs of
//! Chinese numerals as digits, so that `加 v❤信 一三八①②③④⑤⑥⑦⑧` becomes `加v信13812345678`.

use std::collections::HashMap;
use std::sync::LazyLock;

use opencc_fmmseg::DictionaryMaxlength;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// The first and last code points of the dense part of the table (the CJK Unified Ideographs
/// and Extension A, where nearly all traditional characters are).
const DENSE_FIRST: u32 = 0x3400;
const DENSE_LAST: u32 = 0x9FFF;

/// Traditional → simplified, one character at a time.
struct Simplifier {
    /// Indexed by code point − [`DENSE_FIRST`]; `'\0'` for a character that stays.
    dense: Box<[char]>,
    /// The few traditional characters outside the dense range.
    sparse: HashMap<char, char>,
}

impl Simplifier {
    /// The table from OpenCC's `TSCharacters` (embedded in `opencc-fmmseg`; decoding it takes
    /// some tens of milliseconds, once). Should it fail to decode, text is left traditional
    /// — matching still works for simplified text — and the failure is logged.
    fn load() -> Self {
        let mut dense = vec!['\0'; (DENSE_LAST - DENSE_FIRST + 1) as usize].into_boxed_slice();
        let mut sparse = HashMap::new();
        match DictionaryMaxlength::new() {
            Ok(dictionary) => {
                for (from, to) in dictionary.ts_characters.iter() {
                    // Several candidates are separated by spaces: the first is the usual one.
                    let (&[from], Some(to)) = (from, to.chars().next()) else {
                        continue;
                    };
                    match from as u32 {
                        code @ DENSE_FIRST..=DENSE_LAST => {
                            dense[(code - DENSE_FIRST) as usize] = to;
                        }
                        _ => {
                            sparse.insert(from, to);
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e,
                "the traditional → simplified table did not load: traditional text is matched as it is"),
        }
        Self { dense, sparse }
    }

    fn simplify(&self, c: char) -> char {
        let code = c as u32;
        if (DENSE_FIRST..=DENSE_LAST).contains(&code) {
            match self.dense[(code - DENSE_FIRST) as usize] {
                '\0' => c,
                to => to,
            }
        } else if code < 0x2E80 {
            // Below the CJK blocks nothing is traditional; skip the hash look-up.
            c
        } else {
            self.sparse.get(&c).copied().unwrap_or(c)
        }
    }
}

static SIMPLIFIER: LazyLock<Simplifier> = LazyLock::new(Simplifier::load);

/// Characters that render as nothing and are used to break up words.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}'
    )
}

/// What a character becomes without running NFKC, when that is certain: `Some(c)` for characters
/// NFKC leaves alone whatever surrounds them (ASCII, CJK ideographs), the full-width forms and the
/// ideographic space (whose NFKC mapping is a single character), `None` for anything else.
fn fast_nfkc(c: char) -> Option<char> {
    match c {
        // ASCII, the CJK Unified Ideographs and Extension A.
        '\0'..='\u{7F}' | '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' => Some(c),
        // Full-width ASCII variants (！ to ～) are exactly U+FEE0 above their ASCII forms.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        '\u{3000}' => Some(' '),
        _ => None,
    }
}

/// Builds the output: folds case, drops invisible characters, collapses white space.
struct Folder {
    out: String,
    pending_space: bool,
}

impl Folder {
    fn new(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
            pending_space: false,
        }
    }

    fn push(&mut self, c: char) {
        // CJK ideographs have no case and are not space: skip the Unicode table look-ups that
        // `is_whitespace` and `to_lowercase` make for every other non-ASCII character.
        if is_ideograph(c) {
            if self.pending_space {
                self.out.push(' ');
                self.pending_space = false;
            }
            self.out.push(SIMPLIFIER.simplify(c));
            return;
        }
        if is_invisible(c) {
            return;
        }
        if c.is_whitespace() {
            self.pending_space = !self.out.is_empty();
            return;
        }
        if self.pending_space {
            self.out.push(' ');
            self.pending_space = false;
        }
        // Most text is lower-case ASCII or CJK, which fold to themselves.
        if c.is_ascii() {
            self.out.push(c.to_ascii_lowercase());
        } else {
            self.out
                .extend(c.to_lowercase().map(|c| SIMPLIFIER.simplify(c)));
        }
    }
}

/// Whether `c` is a CJK ideograph (Unified or Extension A): no case, no space, NFKC-stable.
fn is_ideograph(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// The normalised form of `text`.
pub fn normalize(text: &str) -> String {
    // NFKC is the expensive step. Most chat is ASCII, CJK ideographs and full-width punctuation,
    // which map character by character; anything else — including a combining mark that could
    // compose with what precedes it — sends the whole text through NFKC.
    let mut folder = Folder::new(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        // A run of ideographs only needs the traditional → simplified table.
        let run = rest
            .char_indices()
            .find(|&(_, c)| !is_ideograph(c))
            .map_or(rest.len(), |(at, _)| at);
        if run > 0 {
            if folder.pending_space {
                folder.out.push(' ');
                folder.pending_space = false;
            }
            let simplifier = &*SIMPLIFIER;
            folder
                .out
                .extend(rest[..run].chars().map(|c| simplifier.simplify(c)));
            rest = &rest[run..];
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        match fast_nfkc(c) {
            Some(mapped) => folder.push(mapped),
            None if is_invisible(c) => {}
            None => return slow_normalize(text),
        }
        rest = &rest[c.len_utf8()..];
    }
    folder.out
}

/// Full NFKC, for text with characters the fast path cannot map on its own.
fn slow_normalize(text: &str) -> String {
    let mut folder = Folder::new(text.len());
    if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        text.chars().for_each(|c| folder.push(c));
    } else {
        text.nfkc().for_each(|c| folder.push(c));
    }
    folder.out
}

/// Runs of at least this many digit-like characters are read as a number (a phone number has
/// 11, a QQ number 5 or more); shorter runs of Chinese numerals stay words (`一起`, `三月`).
const NUMBER_RUN: usize = 5;

/// The digit a Chinese numeral (plain, financial, or `幺` as phone numbers are read aloud)
/// stands for.
fn numeral(c: char) -> Option<char> {
    Some(match c {
        '〇' | '零' => '0',
        '一' | '壹' | '幺' => '1',
        '二' | '贰' | '两' => '2',
        '三' | '叁' => '3',
        '四' | '肆' => '4',
        '五' | '伍' => '5',
        '六' | '陆' => '6',
        '七' | '柒' => '7',
        '八' | '捌' => '8',
        '九' | '玖' => '9',
        _ => return None,
    })
}

/// The form spam checks compare: [`normalize`], then only letters, digits and ideographs kept
/// (spaces, punctuation, symbols and emoji between characters are how spammers split words), and
/// runs of [`NUMBER_RUN`] or more digits and Chinese numerals read as digits.
pub fn squeeze(text: &str) -> String {
    squeeze_normalized(&normalize(text))
}

/// [`squeeze`] for text already [`normalize`]d.
pub fn squeeze_normalized(normalized: &str) -> String {
    squeeze_marking_breaks(normalized).0
}

/// Whether squeezing keeps `c`: letters, digits and ideographs. Ideographs and ASCII are
/// decided without Unicode's tables (a binary search per character, the bulk of squeezing).
fn is_kept(c: char) -> bool {
    if is_ideograph(c) || c.is_ascii_alphanumeric() {
        true
    } else if c.is_ascii() {
        false
    } else {
        c.is_alphanumeric()
    }
}

/// [`squeeze_normalized`], also returning where something was dropped: the byte offsets in
/// the squeezed text before which a space or symbol stood (ascending). Variant matching uses
/// them to tell `vx：abc` (a word `vx`) from `devx` (part of a word).
pub fn squeeze_marking_breaks(normalized: &str) -> (String, Vec<usize>) {
    // Each kept character, and whether something was dropped just before it.
    let mut kept: Vec<(char, bool)> = Vec::with_capacity(normalized.len());
    let mut dropped = false;
    for c in normalized.chars() {
        if is_kept(c) {
            kept.push((c, dropped));
            dropped = false;
        } else {
            dropped = true;
        }
    }
    let mut out = String::with_capacity(normalized.len());
    let mut breaks = Vec::new();
    let mut push = |out: &mut String, (c, after_break): (char, bool)| {
        if after_break && !out.is_empty() {
            breaks.push(out.len());
        }
        out.push(c);
    };
    let mut i = 0;
    while i < kept.len() {
        let run = kept[i..]
            .iter()
            .take_while(|(c, _)| c.is_ascii_digit() || numeral(*c).is_some())
            .count();
        if run >= NUMBER_RUN {
            for &(c, after_break) in &kept[i..i + run] {
                push(&mut out, (numeral(c).unwrap_or(c), after_break));
            }
            i += run;
        } else {
            for &item in &kept[i..i + run.max(1)] {
                push(&mut out, item);
            }
            i += run.max(1);
        }
    }
    (out, breaks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn squeezing_removes_what_spammers_put_between_characters() {
        assert_eq!(squeeze("加 v❤信"), "加v信");
        assert_eq!(squeeze("加 Ｖ．Ｘ 😀 领资料"), "加vx领资料");
        assert_eq!(squeeze("薇\u{200B}信：abc_123"), "薇信abc123");
        assert_eq!(squeeze("加我 一三八①②③④⑤⑥⑦⑧"), "加我13812345678");
        assert_eq!(squeeze("壹叁捌 贰贰贰贰 伍伍伍伍"), "13822225555");
        assert_eq!(squeeze("扣扣：1 2 3 4 5 6"), "扣扣123456");
    }

    #[test]
    fn squeezing_keeps_ordinary_talk_readable() {
        // Short runs of numerals are words, not numbers.
        assert_eq!(squeeze("我们一起学习，三月申报"), "我们一起学习三月申报");
        assert_eq!(squeeze("微信支付 的 发票"), "微信支付的发票");
        assert_eq!(squeeze("第一二三季度"), "第一二三季度");
        assert_eq!(squeeze("增值税 13% 税率"), "增值税13税率");
        assert_eq!(squeeze(""), "");
        assert_eq!(squeeze("！？…… 🎉"), "");
    }

    #[test]
    fn full_width_case_and_invisible_characters_are_folded() {
        assert_eq!(normalize("ＦＡＰＩＡＯ"), "fapiao");
        assert_eq!(normalize("Fa\u{200B}pi\u{FEFF}ao"), "fapiao");
        assert_eq!(normalize("个税　汇算\t\n 清缴 "), "个税 汇算 清缴");
        assert_eq!(normalize("①②③"), "123");
        assert_eq!(normalize("ＶＸ：ａｂｃ１２３"), "vx:abc123");
        assert_eq!(normalize("Ａ\u{301}"), "á", "a combining mark composes");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn chinese_text_is_unchanged_but_for_full_width_punctuation() {
        let text = "请问小规模纳税人季度申报截止日期是哪天？";
        assert_eq!(normalize(text), "请问小规模纳税人季度申报截止日期是哪天?");
    }

    /// The reference: NFKC, then the same folding, with no fast path.
    fn reference(text: &str) -> String {
        let folded: String = text
            .nfkc()
            .filter(|c| !is_invisible(*c))
            .flat_map(char::to_lowercase)
            .collect();
        let simplified: String = folded.chars().map(|c| SIMPLIFIER.simplify(c)).collect();
        simplified.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn traditional_characters_become_simplified() {
        assert_eq!(normalize("增值稅發票怎麼開？"), "增值税发票怎么开?");
        assert_eq!(normalize("加我薇信領取免費資料"), "加我薇信领取免费资料");
        assert_eq!(squeeze("會 計 證"), "会计证");
        // Simplified text and punctuation are left as they are.
        assert_eq!(
            normalize("微信支付的账单「在哪里」"),
            "微信支付的账单「在哪里」"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Squeezing leaves letters, digits and ideographs only, and squeezing again changes
        /// nothing.
        /// A break is recorded exactly where the squeezing dropped something.
        #[test]
        fn breaks_mark_what_was_dropped(text in "[a-z0-9 ，加微信一二三四五六七八九〇①😀.-]{0,30}") {
            let (squeezed, breaks) = squeeze_marking_breaks(&normalize(&text));
            prop_assert_eq!(&squeezed, &squeeze(&text));
            prop_assert!(breaks.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(breaks.iter().all(|&b| b > 0 && b < squeezed.len() && squeezed.is_char_boundary(b)));
        }

        #[test]
        fn squeezing_is_idempotent(text in "[a-zA-Z0-9 ，。？！Ａ-Ｚ０-９　加微信一二三四五六七八九〇壹幺①😀❤\u{200b}_.-]{0,40}") {
            let once = squeeze(&text);
            prop_assert!(once.chars().all(char::is_alphanumeric), "{}", once);
            prop_assert_eq!(squeeze(&once), once);
        }

        /// The fast path changes nothing: it agrees with plain NFKC on text mixing every kind
        /// of character it special-cases with ones it does not.
        #[test]
        fn the_fast_path_agrees_with_nfkc(text in "[a-zA-Z0-9 ，。？！Ａ-Ｚａ-ｚ０-９　个税发票發稅\u{301}\u{200b}①é…、「」\u{3036}]{0,40}") {
            prop_assert_eq!(normalize(&text), reference(&text));
        }
    }
}
