//! RSS/Atom feeds for scheduled reports (declared in `bot-scripts/content/feeds.toml`): fetched
//! in the background, each on its own refresh interval, with a timeout and a size limit; parsed
//! with feed-rs; cached in memory and in the store, so that a restart begins with the last good
//! entries. A report reads the cache and never waits for a fetch. A feed that fails keeps its
//! last entries, is tried again sooner (1, 2, 4 … minutes, at most its refresh interval), and its
//! error is logged and shown by `GET /api/v1/feeds`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::engine::content::FeedSpec;
pub use crate::engine::vars::{FeedItemView, FeedView};
use crate::scripts::live::LiveScripts;
use crate::store::Store;

/// The largest feed document read, in bytes.
const MAX_FEED_BYTES: usize = 2 << 20;
/// Entries kept per feed (the most a report may show).
const KEPT_ENTRIES: usize = 20;
/// The longest summary handed to templates, in characters.
const SUMMARY_CHARS: usize = 120;
/// How often the background task looks for feeds that are due.
const TICK: Duration = Duration::from_secs(5);
/// Store `meta` keys of the cached copies.
const CACHE_PREFIX: &str = "feed_cache:";

/// One entry of a feed, as cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub title: String,
    pub link: String,
    /// Plain text (markup removed), at most [`SUMMARY_CHARS`] characters.
    pub summary: String,
    pub published: Option<DateTime<Utc>>,
}

/// The last good copy of a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedFeed {
    /// The URL it came from: a copy of another URL is not shown.
    url: String,
    title: String,
    entries: Vec<FeedEntry>,
    fetched_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct FeedState {
    cached: Option<CachedFeed>,
    /// The URL last fetched (or tried): a feed whose URL was edited is fetched again at once.
    url: String,
    last_attempt: Option<DateTime<Utc>>,
    last_error: Option<String>,
    failures: u32,
    next_fetch: Option<DateTime<Utc>>,
}

impl FeedState {
    /// The last good copy, if it came from the URL `spec` names now.
    fn copy_of(&self, spec: &FeedSpec) -> Option<&CachedFeed> {
        self.cached.as_ref().filter(|c| c.url == spec.url)
    }
}

/// A feed's health, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct FeedStatus {
    pub name: String,
    pub url: String,
    /// `ok`, `failing` (the last fetch failed) or `pending` (not fetched yet).
    pub state: &'static str,
    pub title: String,
    pub entries: usize,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub next_fetch_at: Option<DateTime<Utc>>,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("timed out after {0} s")]
    Timeout(u64),
    #[error("cannot fetch: {0}")]
    Transport(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("larger than {} bytes", MAX_FEED_BYTES)]
    TooLarge,
    #[error("not an RSS or Atom feed: {0}")]
    Parse(String),
}

/// The feeds' cache and fetcher. Cheap to clone.
#[derive(Clone)]
pub struct Feeds {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Feeds on private addresses are fetched too (`feeds.allow_private`).
    allow_private: bool,
    store: Store,
    states: Mutex<HashMap<String, FeedState>>,
}

impl Feeds {
    /// A cache holding the copies kept in `store` (unreadable copies are logged and ignored).
    /// Feeds are fetched from public addresses only unless `allow_private`
    /// ([`crate::outbound::feed_client`]).
    pub fn load(store: Store, allow_private: bool) -> Result<Feeds, reqwest::Error> {
        let http = crate::outbound::feed_client(allow_private)?;
        let mut states = HashMap::new();
        match store.meta_with_prefix(CACHE_PREFIX) {
            Ok(copies) => {
                for (key, bytes) in copies {
                    let name = key.trim_start_matches(CACHE_PREFIX).to_owned();
                    match serde_json::from_slice::<CachedFeed>(&bytes) {
                        Ok(cached) => {
                            states.insert(
                                name,
                                FeedState {
                                    url: cached.url.clone(),
                                    cached: Some(cached),
                                    ..FeedState::default()
                                },
                            );
                        }
                        Err(e) => {
                            warn!(feed = %name, error = %e, "ignoring an unreadable cached feed")
                        }
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot read the cached feeds; starting without them"),
        }
        Ok(Feeds {
            inner: Arc::new(Inner {
                http,
                allow_private,
                store,
                states: Mutex::new(states),
            }),
        })
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, FeedState>> {
        self.inner.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What templates see of `specs` for a report at `at` in `zone`: every declared feed, with
    /// the entries of its last good copy (none before the first fetch).
    pub fn view(
        &self,
        specs: &[FeedSpec],
        at: DateTime<Utc>,
        zone: Tz,
    ) -> BTreeMap<String, FeedView> {
        let states = self.states();
        specs
            .iter()
            .map(|spec| {
                let state = states.get(&spec.name);
                let cached = state.and_then(|s| s.copy_of(spec));
                let fresh_enough = |e: &&FeedEntry| match (spec.max_age, e.published) {
                    (Some(max), Some(published)) => {
                        (at - published).to_std().map_or(true, |age| age <= max)
                    }
                    _ => true,
                };
                let items = cached
                    .map(|c| {
                        c.entries
                            .iter()
                            .filter(fresh_enough)
                            .take(spec.items)
                            .map(|e| FeedItemView {
                                title: e.title.clone(),
                                link: e.link.clone(),
                                summary: e.summary.clone(),
                                date: e
                                    .published
                                    .map(|p| p.with_timezone(&zone).format("%m-%d").to_string())
                                    .unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let view = FeedView {
                    name: spec.name.clone(),
                    title: cached.map(|c| c.title.clone()).unwrap_or_default(),
                    items,
                    ok: cached.is_some()
                        && state
                            .is_some_and(|s| s.last_attempt.is_some() && s.last_error.is_none()),
                };
                (spec.name.clone(), view)
            })
            .collect()
    }

    /// The health of every declared feed.
    pub fn statuses(&self, specs: &[FeedSpec]) -> Vec<FeedStatus> {
        let states = self.states();
        specs
            .iter()
            .map(|spec| {
                let state = states.get(&spec.name);
                let cached = state.and_then(|s| s.copy_of(spec));
                let last_error = state.and_then(|s| s.last_error.clone());
                FeedStatus {
                    name: spec.name.clone(),
                    url: spec.url.clone(),
                    state: match (&last_error, state.and_then(|s| s.last_attempt)) {
                        (Some(_), _) => "failing",
                        (None, Some(_)) => "ok",
                        (None, None) => "pending",
                    },
                    title: cached.map(|c| c.title.clone()).unwrap_or_default(),
                    entries: cached.map_or(0, |c| c.entries.len()),
                    last_success_at: cached.map(|c| c.fetched_at),
                    last_attempt_at: state.and_then(|s| s.last_attempt),
                    last_error,
                    consecutive_failures: state.map_or(0, |s| s.failures),
                    next_fetch_at: state.and_then(|s| s.next_fetch),
                }
            })
            .collect()
    }

    /// Fetches every feed of `specs` now, all at once, and records the outcomes.
    pub async fn refresh_all(&self, specs: &[FeedSpec]) {
        self.fetch_each(specs.to_vec()).await;
    }

    /// Fetches every feed of `specs` that is due (never fetched, its URL changed, or its next
    /// fetch time passed), all at once, and records the outcomes.
    pub async fn refresh_due(&self, specs: &[FeedSpec]) {
        let now = Utc::now();
        let due: Vec<FeedSpec> = {
            let states = self.states();
            specs
                .iter()
                .filter(|spec| match states.get(&spec.name) {
                    None => true,
                    Some(s) => {
                        s.last_attempt.is_none()
                            || s.url != spec.url
                            || s.next_fetch.is_none_or(|at| at <= now)
                    }
                })
                .cloned()
                .collect()
        };
        self.fetch_each(due).await;
    }

    async fn fetch_each(&self, due: Vec<FeedSpec>) {
        let mut fetches = tokio::task::JoinSet::new();
        for spec in due {
            let feeds = self.clone();
            fetches.spawn(async move {
                let result = feeds.fetch(&spec).await;
                feeds.record(&spec, result).await;
            });
        }
        while fetches.join_next().await.is_some() {}
    }

    async fn record(&self, spec: &FeedSpec, result: Result<CachedFeed, FeedError>) {
        let now = Utc::now();
        match result {
            Ok(cached) => {
                info!(feed = %spec.name, entries = cached.entries.len(), "feed fetched");
                let bytes = serde_json::to_vec(&cached).unwrap_or_default();
                {
                    let mut states = self.states();
                    let state = states.entry(spec.name.clone()).or_default();
                    state.cached = Some(cached);
                    state.url = spec.url.clone();
                    state.last_attempt = Some(now);
                    state.last_error = None;
                    state.failures = 0;
                    state.next_fetch = Some(now + spec.refresh);
                }
                let store = self.inner.store.clone();
                let key = format!("{CACHE_PREFIX}{}", spec.name);
                let saved = tokio::task::spawn_blocking(move || {
                    store.write(|tx| tx.put_meta(&key, &bytes))
                })
                .await;
                if !matches!(saved, Ok(Ok(()))) {
                    warn!(feed = %spec.name, "could not keep the feed's copy in the store; it stays in memory");
                }
            }
            Err(e) => {
                let mut states = self.states();
                let state = states.entry(spec.name.clone()).or_default();
                state.failures += 1;
                state.url = spec.url.clone();
                state.last_attempt = Some(now);
                state.last_error = Some(e.to_string());
                let retry = Duration::from_secs(60)
                    .saturating_mul(1 << state.failures.min(10).saturating_sub(1))
                    .min(spec.refresh);
                state.next_fetch = Some(now + retry);
                warn!(feed = %spec.name, error = %e, failures = state.failures,
                    retry_in_secs = retry.as_secs(),
                    "feed fetch failed; reports keep its last good entries");
            }
        }
    }

    async fn fetch(&self, spec: &FeedSpec) -> Result<CachedFeed, FeedError> {
        let timeout = spec.timeout;
        let download = async {
            // A literal address is not resolved, so the resolver cannot refuse it: here.
            if !self.inner.allow_private
                && let Ok(url) = url::Url::parse(&spec.url)
            {
                crate::outbound::check_public_literal(&url)
                    .map_err(|e| FeedError::Transport(e.to_string()))?;
            }
            let mut response = self
                .inner
                .http
                .get(&spec.url)
                .send()
                .await
                .map_err(|e| FeedError::Transport(e.without_url().to_string()))?;
            if !response.status().is_success() {
                return Err(FeedError::Status(response.status().as_u16()));
            }
            if response
                .content_length()
                .is_some_and(|n| n > MAX_FEED_BYTES as u64)
            {
                return Err(FeedError::TooLarge);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| FeedError::Transport(e.without_url().to_string()))?
            {
                if body.len() + chunk.len() > MAX_FEED_BYTES {
                    return Err(FeedError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        let body = tokio::time::timeout(timeout, download)
            .await
            .map_err(|_| FeedError::Timeout(timeout.as_secs()))??;
        let parsed = tokio::task::spawn_blocking(move || parse(&body))
            .await
            .map_err(|e| FeedError::Parse(e.to_string()))??;
        Ok(CachedFeed {
            url: spec.url.clone(),
            title: parsed.0,
            entries: parsed.1,
            fetched_at: Utc::now(),
        })
    }

    /// Keeps every feed of the current bot-scripts fresh until the task is stopped.
    pub async fn run(self, scripts: Arc<LiveScripts>) {
        loop {
            let current = scripts.current();
            self.refresh_due(&current.content.feeds).await;
            tokio::time::sleep(TICK).await;
        }
    }
}

/// The title and the newest entries of a feed document.
fn parse(body: &[u8]) -> Result<(String, Vec<FeedEntry>), FeedError> {
    let feed = feed_rs::parser::parse(body).map_err(|e| FeedError::Parse(e.to_string()))?;
    let mut entries: Vec<FeedEntry> = feed
        .entries
        .into_iter()
        .map(|e| FeedEntry {
            title: e.title.map(|t| title_text(&t)).unwrap_or_default(),
            link: e
                .links
                .iter()
                .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
                .or(e.links.first())
                .map(|l| safe_link(&l.href))
                .unwrap_or_default(),
            summary: e
                .summary
                .map(|s| inline_safe(&plain_text(&s.content, SUMMARY_CHARS)))
                .unwrap_or_default(),
            published: e.published.or(e.updated),
        })
        .filter(|e| !e.title.is_empty())
        .collect();
    // Newest first; entries without a date keep their place after the dated ones.
    entries.sort_by_key(|e| std::cmp::Reverse(e.published));
    entries.truncate(KEPT_ENTRIES);
    let title = feed.title.map(|t| title_text(&t)).unwrap_or_default();
    Ok((title, entries))
}

/// A title as text that cannot steer the message it is put in. A feed's title is usually plain
/// text (`&lt;延续&gt;` is the text `<延续>`, not a tag), HTML only when the feed says so; either
/// way made [`inline_safe`].
fn title_text(title: &feed_rs::model::Text) -> String {
    let text = match title.content_type.subty().as_str() {
        "html" | "xhtml" => plain_text(&title.content, usize::MAX),
        _ => decode_entities(&title.content)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    };
    inline_safe(&text)
}

/// `text` with the brackets that would make markdown links, tags or mentions out of it (`[…](…)`,
/// `<font>`, `<@all>`) in their full-width forms, as Chinese text writes them anyway.
fn inline_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '[' => '［',
            ']' => '］',
            '<' => '＜',
            '>' => '＞',
            c => c,
        })
        .collect()
}

/// An entry's link, only if it is a web address, with the characters that would end a markdown
/// link or start a tag percent-encoded; anything else (`javascript:`, a relative path) is no link.
fn safe_link(href: &str) -> String {
    let href = href.trim();
    let Ok(url) = url::Url::parse(href) else {
        return String::new();
    };
    if !matches!(url.scheme(), "http" | "https") {
        return String::new();
    }
    let mut link = String::with_capacity(href.len());
    for c in url.as_str().chars() {
        match c {
            '(' => link.push_str("%28"),
            ')' => link.push_str("%29"),
            '[' => link.push_str("%5B"),
            ']' => link.push_str("%5D"),
            '<' => link.push_str("%3C"),
            '>' => link.push_str("%3E"),
            '"' => link.push_str("%22"),
            ' ' => link.push_str("%20"),
            c => link.push(c),
        }
    }
    link
}

/// Decodes the named entities feeds use and numeric ones (`&#24310;`, `&#x5EF6;`); an entity
/// it does not know stays as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| {
                let name = &rest[1..=end];
                let c = match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" | "#39" => Some('\''),
                    "nbsp" => Some(' '),
                    _ => name
                        .strip_prefix("#x")
                        .or_else(|| name.strip_prefix("#X"))
                        .map(|hex| u32::from_str_radix(hex, 16))
                        .or_else(|| name.strip_prefix('#').map(str::parse))
                        .and_then(Result::ok)
                        .and_then(char::from_u32)
                        // `&#0;` or `&#27;` would put control characters into a message.
                        .filter(|c| !c.is_control()),
                };
                c.map(|c| (c, end + 2))
            });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `html` as one line of plain text: tags dropped, the common entities decoded, whitespace
/// collapsed, cut at `max_chars` characters (with "…").
fn plain_text(html: &str, max_chars: usize) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let decoded = decode_entities(&text);
    let collapsed = decoded.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>财税快讯</title>
<item><title>旧闻</title><link>https://example.com/old</link><pubDate>Mon, 02 Nov 2026 01:00:00 +0000</pubDate></item>
<item><title>增值税新规 &amp; 解读</title><link>https://example.com/vat</link>
<description>&lt;p&gt;小规模纳税人&lt;b&gt;减免&lt;/b&gt;政策延续&lt;/p&gt;</description>
<pubDate>Sat, 21 Nov 2026 23:00:00 +0000</pubDate></item>
<item><title>无日期</title><link>https://example.com/undated</link></item>
</channel></rss>"#;

    #[test]
    fn rss_entries_come_newest_first_as_plain_text() {
        let (title, entries) = parse(RSS.as_bytes()).unwrap();
        assert_eq!(title, "财税快讯");
        let titles: Vec<&str> = entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(titles, ["增值税新规 & 解读", "旧闻", "无日期"]);
        assert_eq!(entries[0].link, "https://example.com/vat");
        assert_eq!(entries[0].summary, "小规模纳税人 减免 政策延续");
    }

    #[test]
    fn atom_is_read_too_and_garbage_is_an_error() {
        let atom = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>会计学堂</title><id>x</id><updated>2026-11-21T00:00:00Z</updated>
<entry><title>本周课程</title><id>1</id><link rel="alternate" href="https://example.com/course"/>
<updated>2026-11-21T00:00:00Z</updated><summary>周四晚八点</summary></entry></feed>"#;
        let (title, entries) = parse(atom.as_bytes()).unwrap();
        assert_eq!(title, "会计学堂");
        assert_eq!(entries[0].link, "https://example.com/course");
        assert_eq!(entries[0].summary, "周四晚八点");
        for garbage in [
            "",
            "<html><body>502 Bad Gateway</body></html>",
            "{\"not\": 1",
        ] {
            assert!(
                matches!(parse(garbage.as_bytes()), Err(FeedError::Parse(_))),
                "{garbage}"
            );
        }
    }

    /// Issue 27 §6: a title cannot make a link of its own, a tag or a mention, an escaped
    /// title keeps its text, and only web addresses are links.
    #[test]
    fn titles_cannot_steer_the_message_and_keep_their_text() {
        let rss = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>财税 &lt;快讯&gt;</title>
<item><title>[重要] 申报期限(12月)](http://evil.example)</title><link>https://example.com/a?x=(1)</link></item>
<item><title>&lt;延续&gt; 政策 &#x5EF6;&#38271; &amp;amp; &lt;@all&gt;</title><link>javascript:alert(1)</link></item>
<item><title>  多   空格 </title><link> /relative </link></item>
</channel></rss>"#;
        let (title, entries) = parse(rss.as_bytes()).unwrap();
        assert_eq!(title, "财税 ＜快讯＞");
        let titles: Vec<&str> = entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "［重要］ 申报期限(12月)］(http://evil.example)",
                "＜延续＞ 政策 延长 & ＜@all＞",
                "多 空格",
            ]
        );
        let links: Vec<&str> = entries.iter().map(|e| e.link.as_str()).collect();
        assert_eq!(links, ["https://example.com/a?x=%281%29", "", ""]);
        // The shipped digest line: the title's own brackets cannot close the link early.
        let line = format!("[{}]({})", entries[0].title, entries[0].link);
        assert_eq!(line.matches("](").count(), 1, "{line}");
    }

    #[test]
    fn plain_text_is_cut_on_a_character_boundary() {
        assert_eq!(plain_text("一二三四五", 3), "一二三…");
        assert_eq!(plain_text("a<br/>b&amp;c", 10), "a b&c");
        // A control character is never decoded into a message.
        assert_eq!(plain_text("a&#0;b&#x1b;c", 20), "a&#0;b&#x1b;c");
    }

    fn spec(name: &str, url: &str, items: usize, max_age_hours: u64) -> FeedSpec {
        FeedSpec {
            name: name.into(),
            url: url.into(),
            items,
            timeout: Duration::from_secs(1),
            refresh: Duration::from_secs(300),
            max_age: (max_age_hours > 0).then(|| Duration::from_secs(max_age_hours * 3600)),
        }
    }

    #[tokio::test]
    async fn a_view_keeps_fresh_entries_and_forgets_a_copy_of_another_url() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("f.redb")).unwrap();
        let feeds = Feeds::load(store.clone(), true).unwrap();
        let (title, entries) = parse(RSS.as_bytes()).unwrap();
        let cached = CachedFeed {
            url: "https://example.com/rss".into(),
            title,
            entries,
            fetched_at: Utc::now(),
        };
        feeds
            .record(&spec("news", "https://example.com/rss", 2, 72), Ok(cached))
            .await;
        let at = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .to_utc();
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        let view = feeds.view(&[spec("news", "https://example.com/rss", 2, 72)], at, zone);
        let news = &view["news"];
        assert!(news.ok);
        let titles: Vec<&str> = news.items.iter().map(|i| i.title.as_str()).collect();
        // The November 2 entry is older than 72 hours; the undated one has no age.
        assert_eq!(titles, ["增值税新规 & 解读", "无日期"]);
        assert_eq!(news.items[0].date, "11-22", "in the report's zone");
        // The copy survives a restart.
        drop(feeds);
        let reloaded = Feeds::load(store, true).unwrap();
        let view = reloaded.view(&[spec("news", "https://example.com/rss", 5, 0)], at, zone);
        assert_eq!(view["news"].items.len(), 3);
        assert!(!view["news"].ok, "not fetched since the restart");
        // Another URL under the same name shows nothing of the old copy.
        let moved = reloaded.view(&[spec("news", "https://example.org/rss", 5, 0)], at, zone);
        assert!(moved["news"].items.is_empty());
    }

    #[tokio::test]
    async fn a_feed_whose_url_was_edited_is_fetched_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = Feeds::load(Store::open(&dir.path().join("f.redb")).unwrap(), true).unwrap();
        // Port 9 (discard) refuses connections on loopback: every fetch fails at once.
        let old = spec("news", "http://127.0.0.1:9/old", 3, 0);
        feeds.refresh_due(std::slice::from_ref(&old)).await;
        assert_eq!(
            feeds.statuses(std::slice::from_ref(&old))[0].consecutive_failures,
            1
        );
        // Not due again for a minute under the old URL…
        feeds.refresh_due(std::slice::from_ref(&old)).await;
        assert_eq!(
            feeds.statuses(std::slice::from_ref(&old))[0].consecutive_failures,
            1
        );
        // …but the edited URL is tried now.
        let edited = spec("news", "http://127.0.0.1:9/new", 3, 0);
        feeds.refresh_due(std::slice::from_ref(&edited)).await;
        assert_eq!(
            feeds.statuses(std::slice::from_ref(&edited))[0].consecutive_failures,
            2
        );
    }

    #[tokio::test]
    async fn feeds_on_private_addresses_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = Feeds::load(Store::open(&dir.path().join("f.redb")).unwrap(), false).unwrap();
        for url in [
            "http://127.0.0.1:9/rss",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:8080/api/v1/groups",
            "http://10.0.0.1/rss",
        ] {
            let result = feeds.fetch(&spec("news", url, 3, 0)).await;
            let error = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("private"), "{url}: {error}");
        }
    }
}
