//! Keyword replies through the group-robot channel, with the shipped bot-scripts.

use crate::helpers::*;

#[tokio::test]
async fn a_keyword_gets_its_encrypted_reply_and_then_cools_down_in_that_group() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("kw");
    let ask = |chat: &str, id: &str, text: &str| {
        robot_message(chat, "wangwu", id, &hook, &text_body(text))
    };

    let reply = app
        .reply_to(&ask("g1", "k-1", "@会计小喇叭 发票怎么开？"))
        .await
        .unwrap();
    assert!(
        reply.contains("蓝字发票开具"),
        "the invoice answer: {reply}"
    );
    assert!(
        reply.contains("<Item><![CDATA[wangwu]]></Item>"),
        "mentions the asker: {reply}"
    );

    // Full-width and zero-width evasions normalise to the same keyword.
    let reply = app
        .reply_to(&ask("g2", "k-2", "@会计小喇叭 ＣＰＡ\u{200b}报名"))
        .await
        .unwrap();
    assert!(reply.contains("注册会计师"), "{reply}");

    // The invoice rule has a 60-second cooldown: silent in g1, still answering in g3.
    assert_eq!(
        app.reply_to(&ask("g1", "k-3", "@会计小喇叭 开票")).await,
        None
    );
    let reply = app
        .reply_to(&ask("g3", "k-4", "@会计小喇叭 开票"))
        .await
        .unwrap();
    assert!(reply.contains("蓝字发票开具"), "{reply}");

    // A retry of the first message still gets its original answer, cooldown or not.
    let reply = app
        .reply_to(&ask("g1", "k-1", "@会计小喇叭 发票怎么开？"))
        .await
        .unwrap();
    assert!(reply.contains("蓝字发票开具"), "{reply}");
}

/// Issue 27 §10: a keyword reply over WeCom's 2,048-byte text limit answers with its first
/// piece and posts the rest through the webhook, and `trumpet check` warns about it.
#[tokio::test]
async fn an_over_long_reply_answers_with_its_first_piece_and_posts_the_rest() {
    let scripts = scripts_copy();
    let line =
        "第一条：小规模纳税人按季度申报增值税，月销售额十万元以下免征，具体以当年政策为准。\n";
    let long = line.repeat(60);
    assert!(long.len() > 5000);
    let rule = format!(
        "\n[[keyword]]\nid = \"long-answer\"\npatterns = [\"长问题\"]\nformat = \"text\"\nmention_sender = true\ncontent = \"\"\"\n{long}\"\"\"\n"
    );
    let file = scripts.path().join("keywords.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&rule);
    std::fs::write(&file, text).unwrap();

    let app = spawn_app_with(Options {
        scripts_dir: Some(scripts.path().to_owned()),
        ..Options::default()
    })
    .await;
    let hook = app.fake.webhook_url("kw-long");
    let ask = robot_message(
        "g-long",
        "wangwu",
        "long-1",
        &hook,
        &text_body("@会计小喇叭 长问题"),
    );
    let reply = app.reply_to(&ask).await.unwrap();
    let answered = reply
        .split("<Content><![CDATA[")
        .nth(1)
        .and_then(|r| r.split("]]></Content>").next())
        .unwrap()
        .to_owned();
    assert!(answered.len() <= 2048, "{} bytes", answered.len());
    assert!(answered.starts_with("第一条"), "{answered}");
    assert!(reply.contains("<Item><![CDATA[wangwu]]></Item>"), "{reply}");
    // The rest arrives as posts, and all of it together is the whole answer.
    let expected_posts = long.trim_end().len().div_ceil(2048);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let rest = loop {
        let posts: Vec<String> = app
            .fake
            .received("kw-long")
            .iter()
            .filter(|r| r.answered == 0)
            .map(|r| {
                r.body["text"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let total: usize = answered.len() + posts.iter().map(String::len).sum::<usize>();
        if total + posts.len() + 1 >= long.trim_end().len() {
            break posts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rest never came: {} posts",
            posts.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(rest.len() + 1 >= expected_posts, "{} posts", rest.len());
    assert!(rest.iter().all(|p| p.len() <= 2048));
    let whole = std::iter::once(answered.as_str())
        .chain(rest.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(whole, long.trim_end());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trumpet"))
        .args(["check"])
        .env("TRUMPET_SCRIPTS__DIR", scripts.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: keyword rule `long-answer`") && stdout.contains("2048-byte"),
        "{stdout}"
    );
}
