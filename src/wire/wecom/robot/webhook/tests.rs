//! Tests for webhook URL checks, errcode classification, splitting and request bodies.

use super::*;

fn hosts() -> Vec<String> {
    vec!["qyapi.weixin.qq.com".into(), "127.0.0.1:9000".into()]
}

#[test]
fn only_allowed_hosts_with_a_key_are_accepted() {
    let ok = WebhookUrl::parse(
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY123456",
        &hosts(),
    )
    .unwrap();
    assert_eq!(ok.key(), "KEY123456");
    assert!(
        !format!("{ok:?}{ok}").contains("KEY123456"),
        "the key never prints"
    );
    assert!(
        WebhookUrl::parse("http://127.0.0.1:9000/cgi-bin/webhook/send?key=k", &hosts()).is_ok()
    );

    let refused = [
        (
            "https://evil.example.com/cgi-bin/webhook/send?key=k",
            WebhookUrlError::HostNotAllowed("evil.example.com".into()),
        ),
        (
            "https://127.0.0.1:9001/cgi-bin/webhook/send?key=k",
            WebhookUrlError::HostNotAllowed("127.0.0.1:9001".into()),
        ),
        (
            "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            WebhookUrlError::Scheme("http".into()),
        ),
        (
            "https://qyapi.weixin.qq.com/cgi-bin/other?key=k",
            WebhookUrlError::Path,
        ),
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=",
            WebhookUrlError::NoKey,
        ),
        (
            "https://qyapi.weixin.qq.com.evil.com/cgi-bin/webhook/send?key=k",
            WebhookUrlError::HostNotAllowed("qyapi.weixin.qq.com.evil.com".into()),
        ),
        ("not a url", WebhookUrlError::NotAUrl),
    ];
    for (url, expected) in refused {
        assert_eq!(WebhookUrl::parse(url, &hosts()), Err(expected), "{url}");
    }
}

#[test]
fn errcodes_are_typed() {
    assert!(classify_errcode(0, "ok").is_ok());
    assert!(matches!(
        classify_errcode(45009, ""),
        Err(WebhookError::RateLimited)
    ));
    assert!(matches!(classify_errcode(-1, ""), Err(WebhookError::Busy)));
    assert!(matches!(
        classify_errcode(93000, ""),
        Err(WebhookError::RobotGone { errcode: 93000, .. })
    ));
    assert!(matches!(
        classify_errcode(93008, ""),
        Err(WebhookError::RobotGone { errcode: 93008, .. })
    ));
    let refused = classify_errcode(45002, "too long").unwrap_err();
    assert!(!refused.is_retryable());
    assert!(WebhookError::RateLimited.is_retryable());
    assert!(WebhookError::Status(502).is_retryable());
    assert!(!WebhookError::Status(404).is_retryable());
}

#[test]
fn long_markdown_splits_on_lines_within_the_byte_limit() {
    let line = "会计".repeat(100); // 600 bytes
    let content = vec![line.as_str(); 20].join("\n"); // ~12 KB
    let parts = split_on_lines(&content, MARKDOWN_MAX_BYTES);
    assert!(parts.len() >= 3);
    for part in &parts {
        assert!(part.len() <= MARKDOWN_MAX_BYTES);
        assert!(
            part.split('\n').all(|l| l == line),
            "split only between lines"
        );
    }
    assert_eq!(parts.join("\n"), content);
}

#[test]
fn an_overlong_line_is_cut_between_characters() {
    let content = "税".repeat(1000); // 3000 bytes, one line
    let parts = split_on_lines(&content, 1000);
    assert_eq!(parts.concat(), content);
    assert!(parts.iter().all(|p| p.len() <= 1000));
    assert_eq!(split_on_lines("short", 100), vec!["short"]);
}

#[test]
fn bodies_follow_the_wire_format_and_limits() {
    let text = request_bodies(&OutMessage::Text {
        content: "hi".into(),
        mentioned: vec!["@all".into()],
        mentioned_mobiles: vec![],
    })
    .unwrap();
    assert_eq!(text[0]["msgtype"], "text");
    assert_eq!(text[0]["text"]["mentioned_list"][0], "@all");

    let news = |n: usize| OutMessage::News {
        articles: (0..n)
            .map(|i| Article {
                title: format!("t{i}"),
                description: String::new(),
                url: "https://e/".into(),
                picurl: String::new(),
            })
            .collect(),
    };
    assert_eq!(
        request_bodies(&news(8)).unwrap()[0]["news"]["articles"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    assert!(matches!(
        request_bodies(&news(9)),
        Err(WebhookError::Invalid(_))
    ));
    assert!(matches!(
        request_bodies(&news(0)),
        Err(WebhookError::Invalid(_))
    ));

    let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
    let image = request_bodies(&OutMessage::Image { bytes: png.clone() }).unwrap();
    assert_eq!(image[0]["image"]["md5"], hex::encode(Md5::digest(&png)));
    assert!(matches!(
        request_bodies(&OutMessage::Image {
            bytes: b"GIF89a".to_vec()
        }),
        Err(WebhookError::Invalid(_))
    ));
    let mut huge = png;
    huge.resize(IMAGE_MAX_BYTES + 1, 0);
    assert!(matches!(
        request_bodies(&OutMessage::Image { bytes: huge }),
        Err(WebhookError::Invalid(_))
    ));
    assert!(matches!(
        request_bodies(&OutMessage::Markdown {
            content: " ".into()
        }),
        Err(WebhookError::Invalid(_))
    ));
}
