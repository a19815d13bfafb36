//! `bot-scripts/content/feeds.toml`: the RSS/Atom feeds scheduled reports may quote — where each
//! one is, how many entries a report shows, how long a fetch may take and how often it is
//! refreshed. Only the declaration lives here; fetching and caching are [`crate::runtime::feeds`].

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ScriptError, Source, check_identifier, line_col};
use crate::engine::content::FeedSpec;

pub const FEEDS_FILE: &str = "feeds.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: String,
    url: String,
    #[serde(default = "default_items")]
    items: u64,
    #[serde(default = "default_timeout_secs")]
    timeout_secs: u64,
    #[serde(default = "default_refresh_minutes")]
    refresh_minutes: u64,
    #[serde(default = "default_max_age_hours")]
    max_age_hours: u64,
}

fn default_items() -> u64 {
    3
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_refresh_minutes() -> u64 {
    30
}
fn default_max_age_hours() -> u64 {
    72
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedsFile {
    #[serde(default)]
    feed: Vec<toml::Spanned<RawFeed>>,
}

/// Parses `content/feeds.toml`.
pub(crate) fn parse_feeds(src: &Source<'_>) -> Result<Vec<FeedSpec>, ScriptError> {
    let parsed: FeedsFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut feeds = Vec::with_capacity(parsed.feed.len());
    let mut first_at: HashMap<String, usize> = HashMap::new();
    for spanned in parsed.feed {
        let start = spanned.span().start;
        let raw = spanned.into_inner();
        let err = |reason: String| src.error(start, reason);
        let name = raw.name.trim().to_owned();
        check_identifier("feed name", &name).map_err(&err)?;
        if name.contains('-') {
            // `feeds.tax-news` would read as a subtraction in a template.
            return Err(err(format!(
                "feed name {name:?}: use '_' instead of '-' (templates write feeds.{})",
                name.replace('-', "_")
            )));
        }
        if let Some(&earlier) = first_at.get(&name) {
            let (line, _) = line_col(src.text, earlier);
            return Err(err(format!(
                "feed {name:?} is already defined at line {line}"
            )));
        }
        first_at.insert(name.clone(), start);
        let url = raw.url.trim().to_owned();
        match url::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(err(format!(
                    "feed {name:?}: url {url:?} is not an http(s) URL"
                )));
            }
        }
        let in_range = |what: &str, value: u64, low: u64, high: u64| {
            if (low..=high).contains(&value) {
                Ok(value)
            } else {
                Err(err(format!(
                    "feed {name:?}: {what} must be {low} to {high}, got {value}"
                )))
            }
        };
        let items = in_range("items", raw.items, 1, 20)?;
        let timeout = in_range("timeout_secs", raw.timeout_secs, 1, 60)?;
        let refresh = in_range("refresh_minutes", raw.refresh_minutes, 5, 24 * 60)?;
        let max_age = in_range("max_age_hours", raw.max_age_hours, 0, 24 * 365)?;
        feeds.push(FeedSpec {
            name,
            url,
            items: items as usize,
            timeout: Duration::from_secs(timeout),
            refresh: Duration::from_secs(refresh * 60),
            max_age: (max_age > 0).then(|| Duration::from_secs(max_age * 3600)),
        });
    }
    Ok(feeds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn feeds(text: &str) -> Result<Vec<FeedSpec>, ScriptError> {
        parse_feeds(&Source::new(text, Path::new("content/feeds.toml")))
    }

    #[test]
    fn a_feed_gets_defaults_for_what_it_does_not_say() {
        let parsed = feeds(
            "[[feed]]\nname = \"tax_news\"\nurl = \"https://example.com/rss.xml\"\n\n[[feed]]\nname = \"tips\"\nurl = \"http://127.0.0.1:9/atom\"\nitems = 1\ntimeout_secs = 2\nrefresh_minutes = 5\nmax_age_hours = 0\n",
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].name, "tax_news");
        assert_eq!(parsed[0].items, 3);
        assert_eq!(parsed[0].timeout, Duration::from_secs(10));
        assert_eq!(parsed[0].refresh, Duration::from_secs(30 * 60));
        assert_eq!(parsed[0].max_age, Some(Duration::from_secs(72 * 3600)));
        assert_eq!(parsed[1].items, 1);
        assert_eq!(parsed[1].max_age, None);
        assert!(feeds("").unwrap().is_empty());
    }

    #[test]
    fn feed_mistakes_name_the_feed_and_the_line() {
        let url = "url = \"https://example.com/rss\"";
        for (text, phrase) in [
            (format!("[[feed]]\nname = \"tax-news\"\n{url}\n"), "use '_'"),
            (format!("[[feed]]\nname = \"\"\n{url}\n"), "feed name"),
            (
                format!("[[feed]]\nname = \"a\"\n{url}\n[[feed]]\nname = \"a\"\n{url}\n"),
                "already defined at line 1",
            ),
            (
                "[[feed]]\nname = \"a\"\nurl = \"ftp://example.com/x\"\n".to_owned(),
                "not an http(s) URL",
            ),
            (
                format!("[[feed]]\nname = \"a\"\n{url}\nitems = 0\n"),
                "items must be 1 to 20",
            ),
            (
                format!("[[feed]]\nname = \"a\"\n{url}\ntimeout_secs = 600\n"),
                "timeout_secs must be 1 to 60",
            ),
            (
                format!("[[feed]]\nname = \"a\"\n{url}\nrefresh_minutes = 1\n"),
                "refresh_minutes must be 5",
            ),
            (
                format!("[[feed]]\nname = \"a\"\n{url}\ncolour = 1\n"),
                "colour",
            ),
        ] {
            let e = feeds(&text).unwrap_err();
            assert!(e.to_string().contains(phrase), "{text}: {e}");
            assert!(e.line >= 1, "{e:?}");
        }
    }
}
