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
