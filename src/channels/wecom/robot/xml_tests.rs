//! Tests for parsing every group-robot message kind of PROTOCOL.md §3, and hostile XML.

use super::*;
use chrono::Utc;

const GROUP_TEXT: &str = r#"<xml>
 <WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc]]></WebhookUrl>
 <ChatId><![CDATA[wrkSFfCgAAAA]]></ChatId>
 <PostId><![CDATA[p1]]></PostId>
 <ChatType>group</ChatType>
 <GetChatInfoUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/get_chat_info?code=x]]></GetChatInfoUrl>
 <From><UserId>zhangsan</UserId><Name><![CDATA[张三]]></Name><Alias><![CDATA[jackzhang]]></Alias></From>
 <MsgType>text</MsgType>
 <Text><Content><![CDATA[@RobotA hello]]></Content></Text>
 <MsgId>abcdabcdabcd</MsgId>
</xml>"#;

fn event_of(xml: &str) -> Event {
    parse_message(xml)
        .unwrap()
        .into_event(&BotId::parse("b").unwrap(), Utc::now(), || {
            "fallback".into()
        })
        .unwrap()
}

fn wrap(inner: &str) -> String {
    format!(
        "<xml><ChatId>c1</ChatId><ChatType>group</ChatType><From><UserId>u1</UserId></From><MsgId>m1</MsgId>{inner}</xml>"
    )
}

#[test]
fn group_text_is_parsed_with_the_mention_stripped() {
    let m = parse_message(GROUP_TEXT).unwrap();
    assert_eq!(m.chat_id, "wrkSFfCgAAAA");
    assert_eq!(m.from.name, "张三");
    assert_eq!(m.from.alias, "jackzhang");
    assert_eq!(m.post_id, "p1");
    let e = event_of(GROUP_TEXT);
    assert_eq!(
        e.kind,
        EventKind::Text {
            text: "hello".into()
        }
    );
    assert_eq!(
        e.conversation,
        Conversation::Group(ChatId::new("wrkSFfCgAAAA"))
    );
    assert_eq!(e.msg_id, "abcdabcdabcd");
    assert!(e.webhook_url.unwrap().ends_with("key=abc"));
}

#[test]
fn mentions_are_stripped_with_any_separator() {
    assert_eq!(strip_leading_mention("@会计小喇叭\u{2005}帮助"), "帮助");
    assert_eq!(strip_leading_mention("  @bot   help  "), "help");
    assert_eq!(strip_leading_mention("@bot"), "");
    assert_eq!(strip_leading_mention("no mention"), "no mention");
}

#[test]
fn image_mixed_attachment_and_events_are_parsed() {
    let image = event_of(&wrap(
        "<MsgType>image</MsgType><Image><ImageUrl><![CDATA[https://i/1.png]]></ImageUrl></Image>",
    ));
    assert_eq!(
        image.kind,
        EventKind::Image {
            url: "https://i/1.png".into()
        }
    );

    let mixed = event_of(&wrap(
        "<MsgType>mixed</MsgType><MixedMessage>\
         <MsgItem><MsgType>text</MsgType><Text><Content><![CDATA[@bot 看图]]></Content></Text></MsgItem>\
         <MsgItem><MsgType>image</MsgType><Image><ImageUrl><![CDATA[https://i/2.png]]></ImageUrl></Image></MsgItem>\
         </MixedMessage>",
    ));
    assert_eq!(
        mixed.kind,
        EventKind::Mixed {
            items: vec![
                MixedItem::Text("@bot 看图".into()),
                MixedItem::Image("https://i/2.png".into())
            ]
        }
    );

    let attachment = event_of(&wrap(
        "<MsgType>attachment</MsgType><Attachment><CallbackId>cb1</CallbackId>\
         <Actions><Name>yes</Name><Value>1</Value><Type>button</Type></Actions>\
         <Actions><Name>no</Name><Value>0</Value><Type>button</Type></Actions></Attachment>",
    ));
    let EventKind::Attachment {
        callback_id,
        actions,
    } = attachment.kind
    else {
        panic!("attachment")
    };
    assert_eq!(callback_id, "cb1");
    assert_eq!(actions.len(), 2);
    assert_eq!(
        (actions[1].name.as_str(), actions[1].value.as_str()),
        ("no", "0")
    );

    for (name, kind) in [
        ("add_to_chat", EventKind::BotAdded),
        ("delete_from_chat", EventKind::BotRemoved),
        ("enter_chat", EventKind::EnterChat),
        (
            "something_new",
            EventKind::Unknown {
                msg_type: "event:something_new".into(),
            },
        ),
    ] {
        let e = event_of(&wrap(&format!(
            "<MsgType>event</MsgType><Event><EventType><![CDATA[{name}]]></EventType></Event>"
        )));
        assert_eq!(e.kind, kind, "{name}");
    }
    let unknown = event_of(&wrap("<MsgType>video</MsgType>"));
    assert_eq!(
        unknown.kind,
        EventKind::Unknown {
            msg_type: "video".into()
        }
    );
}

#[test]
fn single_chats_have_no_group_and_group_chats_need_a_chat_id() {
    let single = event_of(
        "<xml><ChatType>single</ChatType><From><UserId>u</UserId></From><MsgType>event</MsgType>\
         <Event><EventType>enter_chat</EventType></Event></xml>",
    );
    assert_eq!(single.conversation, Conversation::Direct);
    assert_eq!(
        single.msg_id, "fallback",
        "no MsgId: the fallback id is used"
    );
    let err = parse_message("<xml><ChatType>group</ChatType><MsgType>text</MsgType></xml>")
        .unwrap()
        .into_event(&BotId::parse("b").unwrap(), Utc::now(), String::new)
        .unwrap_err();
    assert_eq!(err, XmlError::GroupWithoutChatId);
}

#[test]
fn entities_in_plain_text_are_unescaped() {
    let e = event_of(&wrap(
        "<MsgType>text</MsgType><Text><Content>a &lt;b&gt; &amp; c</Content></Text>",
    ));
    assert_eq!(
        e.kind,
        EventKind::Text {
            text: "a <b> & c".into()
        }
    );
}

#[test]
fn the_envelope_yields_encrypt() {
    let body = "<xml><ToUserName><![CDATA[x]]></ToUserName><Encrypt><![CDATA[QUJD]]></Encrypt><AgentID>1</AgentID></xml>";
    assert_eq!(parse_envelope(body).unwrap(), "QUJD");
    assert_eq!(
        parse_envelope("<xml><ToUserName>x</ToUserName></xml>"),
        Err(XmlError::Missing("Encrypt"))
    );
}

#[test]
fn hostile_xml_is_an_error_not_a_panic() {
    let deep = format!("<xml>{}{}</xml>", "<a>".repeat(40), "</a>".repeat(40));
    for bad in [
        "",
        "not xml",
        "<xml><Encrypt>abc</xml>",
        "<xml><Encrypt>abc</Encrypt>",
        "<xml></xml><xml></xml>",
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Encrypt>&e;</Encrypt></xml>",
        "<xml><Encrypt>&bogus;</Encrypt></xml>",
        deep.as_str(),
    ] {
        assert!(parse_envelope(bad).is_err(), "{bad:?} accepted");
    }
    assert!(parse_message("<xml><MsgType>text</MsgType>").is_err());
}
