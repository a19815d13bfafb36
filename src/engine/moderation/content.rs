//! The content checks: what a single message says or carries — banned words (substring, exact
//! or regular expression, on the canonical text), links outside an allow-list, phone numbers and
//! WeChat/QQ ids offered as contacts, and cards (link, mini-program, contact) sent as channel
//! segments. Each answers with the evidence it found, or nothing.

use std::collections::HashMap;
use std::sync::LazyLock;

use daachorse::{CharwiseDoubleArrayAhoCorasick, CharwiseDoubleArrayAhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet};

use super::text::{Prepared, Variants};

/// How a word list matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordMatch {
    /// The word occurs anywhere in the message.
    Substring,
    /// The whole message is the word.
    Exact,
    /// A regular expression matches somewhere.
    Regex,
}

/// A compiled list of banned words. Words are brought to the canonical form messages take
/// (squeezed, variant spellings replaced), so `加微信` also catches `加 V❤信`; regular
/// expressions are matched against that canonical form too.
pub struct WordList {
    mode: WordMatch,
    /// The words as the operator wrote them (the evidence shows which one matched).
    words: Vec<String>,
    /// Their canonical forms, for substring and exact lists (what is matched).
    forms: Vec<String>,
    automaton: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    exact: HashMap<String, u32>,
    regexes: Option<RegexSet>,
    /// The same expressions one by one, to show what matched.
    each: Vec<Regex>,
}

impl std::fmt::Debug for WordList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordList")
            .field("mode", &self.mode)
            .field("words", &self.words.len())
            .finish_non_exhaustive()
    }
}

/// Regular expressions are bounded in size: a rule file must not be able to exhaust memory.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

impl WordList {
    pub fn build(mode: WordMatch, words: Vec<String>, variants: &Variants) -> Result<Self, String> {
        if words.is_empty() {
            return Err("words must list at least one word".into());
        }
        let mut list = Self {
            mode,
            words: Vec::new(),
            forms: Vec::new(),
            automaton: None,
            exact: HashMap::new(),
            regexes: None,
            each: Vec::new(),
        };
        match mode {
            WordMatch::Regex => {
                for word in &words {
                    let regex = regex::RegexBuilder::new(word)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| format!("regex {word:?}: {e}"))?;
                    list.each.push(regex);
                }
                let set = regex::RegexSetBuilder::new(&words)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("regexes: {e}"))?;
                list.regexes = Some(set);
                list.words = words;
            }
            WordMatch::Substring | WordMatch::Exact => {
                let mut forms: Vec<(String, u32)> = Vec::with_capacity(words.len());
                for word in words {
                    let form = variants.canonical(&word);
                    if form.is_empty() {
                        return Err(format!(
                            "word {word:?} has no letters, digits or characters left to match"
                        ));
                    }
                    // The same canonical form twice (`vx` and `微信` after variants): keep one.
                    if forms.iter().any(|(f, _)| *f == form) {
                        continue;
                    }
                    forms.push((form.clone(), list.words.len() as u32));
                    list.forms.push(form);
                    list.words.push(word);
                }
                if mode == WordMatch::Exact {
                    list.exact = forms.into_iter().collect();
                } else {
                    list.automaton = Some(
                        CharwiseDoubleArrayAhoCorasickBuilder::new()
                            .match_kind(MatchKind::LeftmostLongest)
                            .build_with_values(forms)
                            .map_err(|e| format!("word list: {e}"))?,
                    );
                }
            }
        }
        Ok(list)
    }

    /// What the message contains: the word as written, or the text a regular expression
    /// matched (in canonical form).
    pub fn find(&self, message: &Prepared) -> Option<String> {
        self.find_in(message.canonical.as_str())
    }

    /// What the list finds in `text` (the canonical form for [`WordList::find`]; an intent cue
    /// may ask for the normalised one, which keeps punctuation).
    pub fn find_in(&self, text: &str) -> Option<String> {
        let index = match self.mode {
            WordMatch::Substring => self
                .automaton
                .as_ref()?
                .leftmost_find_iter(text)
                .next()
                .map(|m| m.value() as usize),
            WordMatch::Exact => self.exact.get(text).map(|&i| i as usize),
            WordMatch::Regex => {
                // Most messages match none: one pass of the set says so, stopping early when
                // one does; only then is each expression tried, in the order written.
                if !self.regexes.as_ref()?.is_match(text) {
                    return None;
                }
                return self
                    .each
                    .iter()
                    .find_map(|regex| regex.find(text))
                    .map(|m| m.as_str().to_owned());
            }
        }?;
        self.words.get(index).cloned()
    }

    /// The words (or expressions) as written, without repeats.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Each word as written with the canonical form it is matched in, when the list matches
    /// substrings (an intent check reads all its cues' words in one pass).
    pub fn substrings(&self) -> Option<impl Iterator<Item = (&str, &str)>> {
        (self.mode == WordMatch::Substring).then(|| {
            self.words
                .iter()
                .zip(&self.forms)
                .map(|(word, form)| (word.as_str(), form.as_str()))
        })
    }
}

/// Top-level domains spammers use; a dotted name ending in one of them is a link. (Bare
/// `example.pdf` or `3.5` are not.)
const TLDS: &str = "com|cn|net|org|top|xyz|vip|cc|me|io|info|club|shop|site|online|ltd|wang|link|co|tv|app|ren|ink|fun|biz|asia|pro|live|store|tech|life|work|hk|tw|ly|gl|icu|cyou|buzz";

/// `http(s)://host…`, or a host name written out (dots also as `。` or `点`, which spammers use
/// to dodge link detection).
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = format!(
        r"https?://([a-z0-9.-]+)|((?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?(?:\.|。|点))+(?:{TLDS}))(?:[^a-z0-9-]|$)"
    );
    Regex::new(&pattern).expect("the link pattern is valid")
});

/// The first link in `message` whose host is not `allowed` (a host is allowed when it is an
/// allowed domain or under one), as written.
pub fn find_link(message: &Prepared, allowed: &[String]) -> Option<String> {
    // Every link has a scheme or a dot between its host's labels (also written `。` or `点`).
    let text = &message.normalized;
    if !text.contains(['.', '。', '点', ':']) {
        return None;
    }
    // Spaces inside a link (`www . xx . com`) are removed first (normalised text has single
    // ASCII spaces only).
    let compact = message.normalized.replace(' ', "");
    LINK.captures_iter(&compact).find_map(|found| {
        let whole = found.get(1).or_else(|| found.get(2))?;
        // The domain of an e-mail address (`zhang@company.com`) is not a link to follow.
        if found.get(2).is_some() && compact[..whole.start()].ends_with(['@', '.']) {
            return None;
        }
        let host = whole.as_str();
        let host = host.replace(['。', '点'], ".");
        let host = host
            .split(':')
            .next()
            .unwrap_or_default()
            .trim_end_matches('.');
        let allowed = allowed
            .iter()
            .any(|a| host == a || host.ends_with(&format!(".{a}")));
        (!allowed).then(|| host.to_owned())
    })
}

/// A mobile number, a WeChat id or number, or a QQ number, in the canonical text (where
/// `薇信`/`vx`/`扣扣` already read `微信`/`qq` and spelled-out digits are digits).
static CONTACT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?:^|[^0-9])(1[3-9][0-9]{9})(?:[^0-9]|$)",
        r"|微信号?(?:是|为|号码)?([a-z][a-z0-9]{5,19}|[0-9]{6,20})",
        r"|(wxid[a-z0-9]{4,})",
        r"|(?:qq|q群)(?:群号?|号)?(?:是|为|号码)?([0-9]{5,11})(?:[^0-9]|$)",
    ))
    .expect("the contact pattern is valid")
});

/// The first contact offered in `message`: a phone number, a WeChat or QQ id, or an "add me"
/// in one of its disguises ([`find_bait`]).
pub fn find_contact(message: &Prepared) -> Option<String> {
    find_contact_number(message).or_else(|| find_bait(&message.normalized))
}

/// The first phone number, WeChat id or QQ number written out in `message`.
pub fn find_contact_number(message: &Prepared) -> Option<String> {
    let found = CONTACT.captures(&message.canonical)?;
    (1..=4)
        .find_map(|i| found.get(i))
        .map(|m| m.as_str().to_owned())
}

/// The ways a contact channel is written in an "add me": WeChat and its homophones and
/// look-alikes (微/威/薇/徽/卫星/围, v, vx, wx, 绿泡泡), QQ (扣扣, 扣, q, 企鹅).
const CHANNEL: &str = r"(?:微信|威信|薇信|徽信|卫信|围信|卫星|v信|微xin|wei信|weixin|wechat|绿泡泡|vx|wx|微|威|薇|徽|围|v|扣扣|企鹅|qq|扣|q)";

/// "Add me" bait in the bait form of a message (see [`bait_form`]): an add cue and a channel
/// followed by a handle (`加威:lsbb123`, `+v了解dz1688`); a channel, a colon and a handle
/// (`wx:ab12345`); a channel "同号" (the same as the phone); or a message that is nothing but
/// the add (`加v`). Whether what follows is a handle is checked apart ([`is_handle`]).
static BAIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        concat!(
            r"(?:加|\+|联系|找|私|滴滴)我?(?:的)?(?:小号)?{c}(?:号码|号|id)?:?(?:了解|详聊|咨询|领取?)?(?P<a>[a-z0-9_]{{4,20}})",
            r"|(?:^|[^a-z]){c}(?:号码|号|id)?:(?P<b>[a-z0-9_]{{4,20}})",
            r"|(?P<same>{c}同号|同号{c})",
            r"|^(?:我|请)?(?P<bare>(?:加|\+)我?{c})$",
        ),
        c = CHANNEL
    ))
    .expect("the bait pattern is valid")
});

/// The message as bait is looked for in: the normalised text with spaces and decoration
/// (hearts, dots, dashes, emoji) dropped, keeping letters, digits, ideographs, `+` (also `➕`)
/// and `:`.
fn bait_form(normalized: &str) -> String {
    let mut form = String::with_capacity(normalized.len());
    form.extend(normalized.chars().filter_map(|c| match c {
        '➕' | '+' => Some('+'),
        ':' => Some(':'),
        '_' => Some('_'),
        c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
        // Most of a message: common ideographs, kept without the slower Unicode lookup.
        '\u{4E00}'..='\u{9FFF}' => Some(c),
        c if c.is_alphanumeric() => Some(c),
        _ => None,
    }));
    form
}

/// Whether `normalized` holds a character every contact channel in [`CHANNEL`] is written with
/// (微, 威, v, q, 扣, 绿 …): most messages do not, and need no search for bait.
fn may_name_a_channel(normalized: &str) -> bool {
    normalized.chars().any(|c| {
        matches!(
            c.to_ascii_lowercase(),
            'v' | 'q' | 'w' | '微' | '威' | '薇' | '徽' | '卫' | '围' | '扣' | '企' | '绿'
        )
    })
}

/// A handle a spammer gives: letters and digits with at least one digit, and either a letter
/// too (`kj2024pass`, `zz1234`) or five digits and more (a QQ number); or letters joined by an
/// underscore (`study_kj`), which words never are.
fn is_handle(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let letters = text.chars().filter(char::is_ascii_alphabetic).count();
    let joined = text.contains('_') && letters >= 4;
    (digits > 0 && (letters > 0 || digits >= 5)) || joined
}

/// The "add me" bait in a message, if any, as evidence (`加v:dz1688`).
pub fn find_bait(normalized: &str) -> Option<String> {
    if !may_name_a_channel(normalized) {
        return None;
    }
    let form = bait_form(normalized);
    BAIT.captures_iter(&form).find_map(|found| {
        let handle = found.name("a").or_else(|| found.name("b"));
        match handle {
            Some(handle) if is_handle(handle.as_str()) => Some(found[0].to_owned()),
            Some(_) => None,
            None => found
                .name("same")
                .or_else(|| found.name("bare"))
                .map(|m| m.as_str().to_owned()),
        }
    })
}

/// The first QR code whose content is not an address on an `allowed` domain, shortened.
pub fn find_qr_code(codes: &[String], allowed: &[String]) -> Option<String> {
    codes
        .iter()
        .find(|code| {
            let host = url::Url::parse(code.trim())
                .ok()
                .and_then(|u| u.host_str().map(str::to_lowercase));
            !host.is_some_and(|h| {
                allowed
                    .iter()
                    .any(|a| h == *a || h.ends_with(&format!(".{a}")))
            })
        })
        .map(|code| {
            let short: String = code.chars().take(80).collect();
            format!("二维码：{short}")
        })
}

/// The first part of the message whose channel type is one of `kinds` (`wx.link`, `wx.app`…).
pub fn find_card<'a>(parts: &[&'a str], kinds: &[String]) -> Option<&'a str> {
    parts
        .iter()
        .copied()
        .find(|part| kinds.iter().any(|k| k == part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants() -> Variants {
        let wechat = ["薇信".to_owned(), "V信".into(), "vx".into(), "威信".into()];
        let qq = ["扣扣".to_owned()];
        Variants::build([("微信", &wechat[..]), ("qq", &qq[..])]).unwrap()
    }

    fn prepared(text: &str) -> Prepared {
        Prepared::new(text, &variants())
    }

    /// Issue 19: an "add me" in the disguises spammers use is a contact offered; asking for, or
    /// telling of, a contact without one is not.
    #[test]
    fn add_me_bait_is_found_in_its_disguises() {
        let shipped = crate::engine::Scripts::embedded()
            .unwrap()
            .moderation
            .variants;
        let found = |text: &str| find_contact(&Prepared::new(text, &shipped));
        for bait in [
            "➕V了解 dz1688",
            "联系微：zhengshu99",
            "加威：lsbb123",
            "加V:yangmao_1",
            "加卫星：zj_2025",
            "加扣扣 2345678901",
            "₊ᵛ：gupiao99",
            "微xin：daizhang01",
            "加薇 zz1234",
            "V信同号",
            "加v",
            "想进学习群的加绿泡泡 study_kj",
            "扣扣群 7 8 9 1 2 3 4 5 6 速进",
        ] {
            assert!(found(bait).is_some(), "{bait} passed");
        }
        for ordinary in [
            "我加您微信了，麻烦通过一下",
            "刚加了你微信，资料发我一下谢谢",
            "请问老师的微信是多少，想请教问题",
            "微信支付的手续费怎么入账？",
            "QQ邮箱收不到税务局的邮件",
            "我的工号是 kj2024，系统登录不上",
            "加班费要不要交个税",
            "VLOOKUP老是报错，求助",
            "腾讯会议号 826 331 209，密码 1234",
            "加v领2025新版题库的是骗子吗",
        ] {
            assert_eq!(found(ordinary), None, "{ordinary}");
        }
    }

    #[test]
    fn words_match_through_the_disguises() {
        let list = WordList::build(
            WordMatch::Substring,
            vec!["加微信".into(), "刷单".into(), "日赚".into()],
            &variants(),
        )
        .unwrap();
        for text in ["加 V ❤ 信 领资料", "刷 单 兼 职", "日賺三百", "加威信"] {
            assert!(list.find(&prepared(text)).is_some(), "{text}");
        }
        assert_eq!(list.find(&prepared("加薇信")).as_deref(), Some("加微信"));
        for text in ["微信支付的发票怎么开", "单位刷卡"] {
            assert_eq!(list.find(&prepared(text)), None, "{text}");
        }
    }

    #[test]
    fn exact_and_regex_lists() {
        let exact = WordList::build(WordMatch::Exact, vec!["滴滴".into()], &variants()).unwrap();
        assert!(exact.find(&prepared("滴 滴！")).is_some());
        assert!(exact.find(&prepared("滴滴打车的发票")).is_none());
        let regex = WordList::build(
            WordMatch::Regex,
            vec!["代开.{0,6}(票|发票).{0,8}(微信|qq|联系|点)".into()],
            &variants(),
        )
        .unwrap();
        assert_eq!(
            regex.find(&prepared("代开各类发票，加 vx")).as_deref(),
            Some("代开各类发票加微信")
        );
        assert!(
            regex
                .find(&prepared("小规模可以去税务局代开发票吗"))
                .is_none()
        );
        let err = WordList::build(WordMatch::Regex, vec!["(".into()], &variants()).unwrap_err();
        assert!(err.contains("regex"), "{err}");
        assert!(WordList::build(WordMatch::Substring, vec!["！".into()], &variants()).is_err());
    }

    #[test]
    fn links_outside_the_allow_list_are_found() {
        let allow = vec!["chinatax.gov.cn".to_owned(), "qq.com".to_owned()];
        let found = |t: &str| find_link(&prepared(t), &allow);
        assert_eq!(
            found("领取资料 https://bit.ly/abc").as_deref(),
            Some("bit.ly")
        );
        assert_eq!(
            found("打开 www . xxx . com 注册").as_deref(),
            Some("www.xxx.com")
        );
        assert_eq!(found("官网：abc点com领取").as_deref(), Some("abc.com"));
        assert_eq!(
            found("网址 ｗｗｗ．ｆｏｏ．ｔｏｐ").as_deref(),
            Some("www.foo.top")
        );
        assert_eq!(found("见 https://etax.chinatax.gov.cn/x 办理"), None);
        assert_eq!(found("mp.weixin.qq.com/s/abc"), None);
        for ham in [
            "税率3.5%",
            "发票.pdf 发我一下",
            "下午三点开会",
            "链接在群公告里",
        ] {
            assert_eq!(found(ham), None, "{ham}");
        }
    }

    #[test]
    fn contacts_are_found_in_their_disguises() {
        for (text, contact) in [
            ("有需要的联系 138 1234 5678", "13812345678"),
            ("电话：一三八一二三四五六七八", "13812345678"),
            ("加 V 信：abc_2024x", "abc2024x"),
            ("扣扣 12345678", "12345678"),
            ("wxid_abcd1234", "wxidabcd1234"),
        ] {
            assert_eq!(
                find_contact(&prepared(text)).as_deref(),
                Some(contact),
                "{text}"
            );
        }
        for ham in [
            "微信支付的账单在哪看",
            "税号91310115MA1K3XXXX8",
            "发票号码12345678",
            "12366 是纳税服务热线",
            "今年是2024年，第13812个客户",
        ] {
            assert_eq!(find_contact(&prepared(ham)), None, "{ham}");
        }
    }

    #[test]
    fn qr_codes_outside_the_allow_list_are_found() {
        let allow = vec!["gov.cn".to_owned()];
        let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            find_qr_code(&codes(&["https://weixin.qq.com/g/abc"]), &allow).as_deref(),
            Some("二维码：https://weixin.qq.com/g/abc")
        );
        assert!(find_qr_code(&codes(&["https://etax.chinatax.gov.cn/x"]), &allow).is_none());
        assert!(
            find_qr_code(&codes(&["加我微信"]), &allow).is_some(),
            "not an address"
        );
        assert!(find_qr_code(&[], &allow).is_none());
    }

    #[test]
    fn cards_are_found_by_kind() {
        let kinds = vec!["wx.link".to_owned(), "wx.app".to_owned()];
        assert_eq!(find_card(&["text", "wx.app"], &kinds), Some("wx.app"));
        assert_eq!(find_card(&["wx.emoji"], &kinds), None);
    }
}
