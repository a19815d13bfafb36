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
mod tests;
