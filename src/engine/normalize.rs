//! Text normalisation for matching: what members type and what operators write are brought to
//! one form, so that `ＦＡＰＩＡＯ`, `Fapiao` and `fa\u{200b}piao` all match `fapiao`.
//!
//! Steps: Unicode NFKC (full-width letters and digits become ASCII, `①` becomes `1`, the
//! ideographic space becomes a space), invisible characters removed (zero-width spaces and
//! joiners, word joiner, BOM, soft hyphen), case folded, runs of white space collapsed to one
//! space, trimmed. Keyword matching uses it now; moderation builds on it.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// Characters that render as nothing and are used to break up words.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}'
    )
}

/// The normalised form of `text`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    let mut push = |c: char| {
        if is_invisible(c) {
            return;
        }
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            return;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        // Most text is lower-case ASCII or CJK, which fold to themselves.
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    };
    // NFKC is the expensive step; text already in NFKC form (most Chinese text) skips it.
    if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        text.chars().for_each(&mut push);
    } else {
        text.nfkc().for_each(&mut push);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_case_and_invisible_characters_are_folded() {
        assert_eq!(normalize("ＦＡＰＩＡＯ"), "fapiao");
        assert_eq!(normalize("Fa\u{200B}pi\u{FEFF}ao"), "fapiao");
        assert_eq!(normalize("个税　汇算\t\n 清缴 "), "个税 汇算 清缴");
        assert_eq!(normalize("①②③"), "123");
        assert_eq!(normalize("ＶＸ：ａｂｃ１２３"), "vx:abc123");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn chinese_text_is_unchanged() {
        let text = "请问小规模纳税人季度申报截止日期是哪天？";
        assert_eq!(normalize(text), "请问小规模纳税人季度申报截止日期是哪天?");
    }
}
