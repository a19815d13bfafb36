use chrono::Utc;
use serde_json::{Value, json};

use super::*;

fn bot() -> BotId {
    BotId::parse("ai").unwrap()
}

fn message(body: Value) -> String {
    json!({ "cmd": "aibot_msg_callback", "headers": { "req_id": "r1" }, "body": body }).to_string()
}

#[test]
fn a_group_question_becomes_a_mentioned_text_event_without_the_mention() {
    let frame = message(json!({
        "msgid": "m1", "aibotid": "aib1", "chatid": "wrkSFfCgAA", "chattype": "group",
        "from": { "userid": "zhangsan" }, "msgtype": "text",
        "text": { "content": "@会计小喇叭 发票怎么开" },
        "response_url": "https://example.invalid/r",
    }));
    let Inbound::Message { req_id, body } = parse_frame(&frame).unwrap() else {
        panic!("not a message");
    };
    assert_eq!(req_id, "r1");
    let event = body.into_event(&bot(), Utc::now()).unwrap();
    assert_eq!(event.msg_id, "m1");
    assert_eq!(event.chat_id().unwrap().as_str(), "wrkSFfCgAA");
    assert_eq!(event.from.user_id, "zhangsan");
    assert!(event.mentioned);
    assert_eq!(
        event.kind,
        EventKind::Text {
            text: "发票怎么开".into()
        }
    );
}

#[test]
fn one_to_one_voice_mixed_and_unread_kinds() {
    let direct = |msgtype: &str, extra: Value| {
        let mut body = json!({ "msgid": "m", "chattype": "single", "from": { "userid": "u" }, "msgtype": msgtype });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let Inbound::Message { body, .. } = parse_frame(&message(body)).unwrap() else {
            panic!()
        };
        body.into_event(&bot(), Utc::now()).unwrap()
    };
    let voice = direct("voice", json!({ "voice": { "content": "帮助" } }));
    assert!(voice.chat_id().is_none());
    assert_eq!(
        voice.kind,
        EventKind::Text {
            text: "帮助".into()
        }
    );
    let mixed = direct(
        "mixed",
        json!({ "mixed": { "msg_item": [
            { "msgtype": "text", "text": { "content": "看这张图" } },
            { "msgtype": "image", "image": { "url": "https://x.invalid/enc", "aeskey": "k" } },
        ] } }),
    );
    assert_eq!(
        mixed.kind,
        EventKind::Mixed {
            items: vec![MixedItem::Text("看这张图".into())]
        }
    );
    let image = direct(
        "image",
        json!({ "image": { "url": "https://x.invalid/enc" } }),
    );
    assert_eq!(
        image.kind,
        EventKind::Unknown {
            msg_type: "image".into()
        }
    );
}

#[test]
fn events_and_acks_are_told_apart() {
    let event = json!({ "cmd": "aibot_event_callback", "headers": { "req_id": "e1" }, "body": {
        "msgid": "ev1", "create_time": 1, "aibotid": "a", "from": { "userid": "u" },
        "msgtype": "event", "event": { "eventtype": "disconnected_event" } } })
    .to_string();
    let Inbound::Event { req_id, body } = parse_frame(&event).unwrap() else {
        panic!()
    };
    assert_eq!(
        (req_id.as_str(), body.event_type()),
        ("e1", "disconnected_event")
    );
    let enter = json!({ "cmd": "aibot_event_callback", "headers": { "req_id": "e2" }, "body": {
        "msgid": "ev2", "chattype": "single", "from": { "userid": "u" },
        "msgtype": "event", "event": { "eventtype": "enter_chat" } } })
    .to_string();
    let Inbound::Event { body, .. } = parse_frame(&enter).unwrap() else {
        panic!()
    };
    assert_eq!(
        body.into_event(&bot(), Utc::now()).unwrap().kind,
        EventKind::EnterChat
    );
    assert_eq!(
        parse_frame(r#"{"headers":{"req_id":"ping_1"},"errcode":0,"errmsg":"ok"}"#).unwrap(),
        Inbound::Ack {
            req_id: "ping_1".into(),
            errcode: 0,
            errmsg: "ok".into()
        }
    );
    assert_eq!(
        parse_frame(r#"{"cmd":"something_new","headers":{"req_id":"x"}}"#).unwrap(),
        Inbound::Other {
            cmd: "something_new".into()
        }
    );
}

#[test]
fn hostile_frames_are_errors_not_panics() {
    for bad in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"headers":{}}"#,
        r#"{"headers":{"req_id":""}}"#,
        r#"{"cmd":"aibot_msg_callback","headers":{"req_id":"r"}}"#,
        r#"{"cmd":"aibot_msg_callback","headers":{"req_id":"r"},"body":{"msgid":5}}"#,
    ] {
        assert!(parse_frame(bad).is_err(), "{bad:?} was accepted");
    }
    let no_chat = message(json!({ "msgid": "m", "chattype": "group", "msgtype": "text" }));
    let Inbound::Message { body, .. } = parse_frame(&no_chat).unwrap() else {
        panic!()
    };
    assert_eq!(
        body.into_event(&bot(), Utc::now()),
        Err(FrameError::GroupWithoutChatId)
    );
    let no_id = message(json!({ "chattype": "single", "msgtype": "text" }));
    let Inbound::Message { body, .. } = parse_frame(&no_id).unwrap() else {
        panic!()
    };
    assert_eq!(
        body.into_event(&bot(), Utc::now()),
        Err(FrameError::NoMsgId)
    );
}

#[test]
fn outbound_frames_have_the_sdk_shape() {
    let sub: Value =
        serde_json::from_str(&subscribe("aibot_subscribe_1", "BOT", "S3CRET")).unwrap();
    assert_eq!(sub["cmd"], "aibot_subscribe");
    assert_eq!(sub["headers"]["req_id"], "aibot_subscribe_1");
    assert_eq!(sub["body"], json!({ "bot_id": "BOT", "secret": "S3CRET" }));
    let reply: Value = serde_json::from_str(&respond_stream("r1", "s1", "**答**")).unwrap();
    assert_eq!(reply["cmd"], "aibot_respond_msg");
    assert_eq!(reply["headers"]["req_id"], "r1");
    assert_eq!(
        reply["body"],
        json!({ "msgtype": "stream", "stream": { "id": "s1", "finish": true, "content": "**答**" } })
    );
    let post: Value = serde_json::from_str(&send_markdown("q", "wrk1", "早报")).unwrap();
    assert_eq!(
        post["body"],
        json!({ "chatid": "wrk1", "msgtype": "markdown", "markdown": { "content": "早报" } })
    );
    let welcome: Value = serde_json::from_str(&respond_welcome("e", "你好")).unwrap();
    assert_eq!(welcome["cmd"], "aibot_respond_welcome_msg");
    assert_eq!(welcome["body"]["text"]["content"], "你好");
    let ping: Value = serde_json::from_str(&ping("ping_1")).unwrap();
    assert_eq!(
        ping,
        json!({ "cmd": "ping", "headers": { "req_id": "ping_1" } })
    );
    assert!(new_req_id("ping").starts_with("ping_"));
    assert_ne!(new_req_id("ping"), new_req_id("ping"));
}

#[test]
fn long_answers_are_split_within_the_stream_limit() {
    let line = "增值税申报期限为每月十五日前。\n"; // 46 bytes
    let long = line.repeat(1000);
    let pieces = reply_contents(&Reply::Markdown {
        content: long.clone(),
    });
    assert!(pieces.len() >= 3, "{}", pieces.len());
    assert!(pieces.iter().all(|p| p.len() <= MAX_STREAM_BYTES));
    assert!(pieces.iter().all(|p| p.ends_with('\n')), "cut at line ends");
    assert_eq!(pieces.concat(), long);
    // No line ends at all: cut at character boundaries.
    let wall = "税".repeat(10_000);
    let pieces = split_at_most(&wall, MAX_STREAM_BYTES);
    assert!(pieces.iter().all(|p| p.len() <= MAX_STREAM_BYTES));
    assert_eq!(pieces.concat(), wall);
    assert_eq!(split_at_most("", 10), vec![String::new()]);
    let text = reply_contents(&Reply::Text {
        content: "欢迎".into(),
        mentioned: vec!["lisi".into()],
    });
    assert_eq!(text, vec!["<@lisi> 欢迎".to_owned()]);
}

#[test]
fn posts_are_markdown_and_an_image_is_refused_with_a_reason() {
    let text = OutMessage::Text {
        content: "早上好".into(),
        mentioned: vec!["@all".into(), "wangwu".into()],
        mentioned_mobiles: vec![],
    };
    assert_eq!(
        post_contents(&text).unwrap(),
        vec!["@all <@wangwu> 早上好".to_owned()]
    );
    let news = OutMessage::News {
        articles: vec![crate::domain::Article {
            title: "今日税讯".into(),
            description: "三条新规".into(),
            url: "https://example.com/a".into(),
            picurl: String::new(),
        }],
    };
    assert_eq!(
        post_contents(&news).unwrap(),
        vec!["[今日税讯](https://example.com/a)\n三条新规".to_owned()]
    );
    let long = OutMessage::Markdown {
        content: "报".repeat(8_000),
    };
    assert_eq!(post_contents(&long).unwrap().len(), 2);
    let image = OutMessage::Image { bytes: vec![1, 2] };
    assert!(post_contents(&image).unwrap_err().contains("image"));
}
