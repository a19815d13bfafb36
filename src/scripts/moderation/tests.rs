use super::*;
use std::path::Path;

fn parse_text(text: &str) -> Result<ModerationRules, ScriptError> {
    let mut templates = Templates::new();
    parse(
        &Source::new(text, Path::new("moderation.toml")),
        &mut templates,
    )
}

#[test]
fn the_shipped_file_parses() {
    let rules = parse_text(crate::scripts::EMBEDDED_MODERATION).unwrap();
    assert!(rules.checks.len() >= 6, "{}", rules.checks.len());
    assert!(rules.warning.is_some() && rules.admin_notice.is_some());
    assert!(rules.raid.is_some());
}

#[test]
fn mistakes_are_reported_with_their_line() {
    let base = "[[check]]\nid = \"x\"\naction = \"warn\"\nreason = \"广告\"\n";
    for (extra, expected) in [
        ("kind = \"words\"\nwords = []", "at least one word"),
        (
            "kind = \"words\"\nwords = [\"a\"]\nallow = [\"x.com\"]",
            "allow is not a setting of a words check",
        ),
        ("kind = \"flood\"\nwithin_secs = 10", "needs messages"),
        // Issue 27 §12: a URL where a domain is wanted, and a mistyped kind blamed as such.
        (
            "kind = \"links\"\nallow = [\"https://etax.chinatax.gov.cn/x\"]",
            "write the host alone, e.g. \"etax.chinatax.gov.cn\"",
        ),
        (
            "kind = \"word\"\nmatch = \"exact\"\nwords = [\"a\"]",
            "kind \"word\" must be words, links",
        ),
        (
            "kind = \"flood\"\nmessages = 5\nwithin_secs = 0",
            "within_secs must be 1",
        ),
        (
            "kind = \"words\"\nmatch = \"regex\"\nwords = [\"(\"]",
            "regex",
        ),
        ("kind = \"spam\"", "kind \"spam\""),
        ("kind = \"contacts\"\nmembers = \"new\"", "members \"new\""),
        ("kind = \"learned\"\nthreshold = 99.0", "between -50 and 50"),
        ("kind = \"intent\"", "needs at least one [[check.cue]]"),
        (
            "kind = \"intent\"\n[[check.cue]]\nname = \"x\"\nweight = 30.0\nwords = [\"a\"]",
            "weight 30 must be between -20 and 20",
        ),
        (
            "kind = \"intent\"\n[[check.cue]]\nname = \"x\"\nweight = 1.0\nwords = [\"a\"]\nform = \"raw\"",
            "form \"raw\" must be canonical or normalized",
        ),
        (
            "kind = \"contacts\"\nthreshold = 6.0",
            "threshold is not a setting of a contacts check",
        ),
        (
            "kind = \"intent\"\n[[check.cue]]\nname = \"x\"\nweight = 1.0",
            "cue \"x\": a cue needs words, or finds",
        ),
        (
            "kind = \"intent\"\n[[check.cue]]\nname = \"x\"\nweight = 1.0\nfinds = \"phones\"",
            "finds \"phones\" must be contacts, bait or links",
        ),
        (
            "kind = \"intent\"\n[[check.cue]]\nname = \"x\"\nweight = 1.0\nfinds = \"bait\"\nwords = [\"a\"]",
            "takes no words, match or form",
        ),
        (
            "kind = \"intent\"\n[[check.cue]]\nname = \"x\"\nweight = 1.0\nfinds = \"contacts\"\nallow = [\"a.com\"]",
            "allow goes with finds = \"links\"",
        ),
    ] {
        let err = parse_text(&format!("{base}{extra}\n")).unwrap_err();
        assert!(err.reason.contains(expected), "{extra}: {err}");
        assert_eq!(err.line, 1, "{err}");
    }
    let err = parse_text(
        "[[check]]\nid = \"x\"\nkind = \"contacts\"\naction = \"ban\"\nreason = \"r\"\n",
    )
    .unwrap_err();
    assert!(err.reason.contains("action \"ban\""), "{err}");
    let twice = "[[check]]\nid = \"x\"\nkind = \"contacts\"\naction = \"warn\"\nreason = \"r\"\n";
    let err = parse_text(&format!("{twice}{twice}")).unwrap_err();
    assert!(err.reason.contains("already written at line 1"), "{err}");
    assert_eq!(err.line, 6);
    let err = parse_text("[variants]\n\"微信\" = [\"vx\"]\n\"qq\" = [\"vx\"]\n").unwrap_err();
    assert!(err.reason.contains("listed for both"), "{err}");
    let err = parse_text("[[settings]]\nwarn_limit = 0\n").unwrap_err();
    assert!(err.reason.contains("warn_limit must be 1 to 100"), "{err}");
}

/// Cues that find content rather than words: a phone number, "add me" bait, a link outside the
/// cue's allow list — each named in the evidence with what it found.
#[test]
fn cues_find_contacts_bait_and_links() {
    use crate::engine::moderation::eval::acts_on;
    let text = "[[check]]\nid = \"ads\"\nkind = \"intent\"\nthreshold = 4.0\naction = \"warn\"\nreason = \"广告\"\n\
        [[check.cue]]\nname = \"加我\"\nweight = 4.0\nfinds = \"bait\"\n\
        [[check.cue]]\nname = \"电话\"\nweight = 2.0\nfinds = \"contacts\"\n\
        [[check.cue]]\nname = \"链接\"\nweight = 2.0\nfinds = \"links\"\nallow = [\"gov.cn\"]\n\
        [[check.cue]]\nname = \"代办\"\nweight = 2.0\nwords = [\"代办\"]\n";
    let rules = parse_file(text, std::path::Path::new("moderation.toml")).unwrap();
    // Bait convicts alone; a phone number or a link only with another cue.
    for (text, acted, evidence) in [
        ("加威：lsbb123", true, "加我(+4): 加威:lsbb123"),
        (
            "代办执照，电话13912345678",
            true,
            "电话(+2): 13912345678; 代办(+2): 代办",
        ),
        (
            "代办执照 kuaiji.club",
            true,
            "链接(+2): kuaiji.club; 代办(+2): 代办",
        ),
        ("我换号了，新号码13912345678", false, ""),
        ("代办执照看 etax.chinatax.gov.cn", false, ""),
    ] {
        let fired = acts_on(&rules, text, chrono::Utc::now());
        assert_eq!(fired.is_some(), acted, "{text}: {fired:?}");
        if acted {
            assert!(fired.unwrap().contains(evidence), "{text}");
        }
    }
}

/// A word listed in two cues of one intent check would count twice: refused, naming both.
#[test]
fn a_word_in_two_cues_is_refused() {
    let check =
        "[[check]]\nid = \"ads\"\nkind = \"intent\"\naction = \"warn\"\nreason = \"广告\"\n";
    for (text, expected) in [
        (
            format!(
                "{check}[[check.cue]]\nname = \"甲\"\nweight = 4.0\nwords = [\"刷单\"]\n\
                 [[check.cue]]\nname = \"乙\"\nweight = 2.0\nwords = [\"日结\", \"刷单\"]\n"
            ),
            "\"刷单\" is listed in cue \"甲\" and again in cue \"乙\"",
        ),
        // Two spellings that read the same once variants are replaced count twice as well.
        (
            format!(
                "[variants]\n\"微信\" = [\"vx\"]\n{check}\
                 [[check.cue]]\nname = \"甲\"\nweight = 4.0\nwords = [\"加微信\"]\n\
                 [[check.cue]]\nname = \"乙\"\nweight = 2.0\nwords = [\"加vx\"]\n"
            ),
            "\"加vx\" in cue \"乙\" reads the same as \"加微信\" in cue \"甲\"",
        ),
    ] {
        let error = parse_file(&text, std::path::Path::new("moderation.toml")).unwrap_err();
        assert!(error.reason.contains(expected), "{error}");
    }
}

/// All of an intent check's words are read in one pass; each cue still shows its leftmost word,
/// the longest one there, and cues fire in the order they are written.
#[test]
fn each_cue_shows_its_leftmost_longest_word() {
    use crate::engine::moderation::eval::acts_on;
    let text = "[[check]]\nid = \"ads\"\nkind = \"intent\"\nthreshold = 1.0\naction = \"warn\"\nreason = \"广告\"\n\
        [[check.cue]]\nname = \"甲\"\nweight = 1.0\nwords = [\"发票\", \"代开\", \"代开发票\"]\n\
        [[check.cue]]\nname = \"乙\"\nweight = 1.0\nwords = [\"详询\"]\n\
        [[check.cue]]\nname = \"丙\"\nweight = 1.0\nform = \"normalized\"\nwords = [\"吗\"]\n";
    let rules = parse_file(text, std::path::Path::new("moderation.toml")).unwrap();
    assert_eq!(
        acts_on(&rules, "详询：专业代开发票，要发票吗？", chrono::Utc::now()).as_deref(),
        Some("ads: intent 3.0 ≥ 1: 甲(+1): 代开发票; 乙(+1): 详询; 丙(+1): 吗")
    );
}
