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
