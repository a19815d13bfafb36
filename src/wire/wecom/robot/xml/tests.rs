//! Tests for parsing every group-robot message kind WeCom documents, and hostile XML.

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
    assert_eq!(strip_robot_mention("@会计小喇叭\u{2005}帮助", true), "帮助");
    assert_eq!(strip_robot_mention("  @bot   help  ", true), "help");
    assert_eq!(strip_robot_mention("@bot", true), "");
    assert_eq!(strip_robot_mention("no mention", true), "no mention");
    // Typed after the words, the robot's mention comes last (issue 27 §11).
    assert_eq!(strip_robot_mention("帮助 @会计小喇叭", true), "帮助");
    assert_eq!(
        strip_robot_mention("设置小当家 @张三\u{2005}@会计小喇叭\u{2005}", true),
        "设置小当家 @张三"
    );
    // A one-to-one chat mentions nobody: nothing is removed.
    assert_eq!(strip_robot_mention("请联系 @张三", false), "请联系 @张三");
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

/// The reference: the same walk done with quick-xml, a general parser. The scanner must agree
/// with it on every well-formed document.
fn reference_walk(xml: &str) -> Result<Vec<(Vec<Tag>, String)>, String> {
    use quick_xml::Reader;
    use quick_xml::events::Event as X;
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut path = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            X::Start(e) => path.push(if path.is_empty() {
                Tag::Root
            } else {
                tag_of(e.name().as_ref())
            }),
            X::End(_) => {
                path.pop();
            }
            X::Text(t) => out.push((
                path.clone(),
                t.unescape().map_err(|e| e.to_string())?.into_owned(),
            )),
            X::CData(c) => out.push((
                path.clone(),
                String::from_utf8(c.into_inner().into_owned()).unwrap(),
            )),
            X::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

fn scanner_walk(xml: &str) -> Result<Vec<(Vec<Tag>, String)>, XmlError> {
    let mut out = Vec::new();
    walk(xml, |path, text| {
        out.push((path.to_vec(), text.into_owned()))
    })?;
    Ok(out)
}

#[derive(Debug, Clone)]
enum Node {
    Element(String, Vec<Node>),
    Text(String),
    CData(String),
}

fn render(node: &Node, out: &mut String) {
    match node {
        Node::Element(name, children) => {
            out.push_str(&format!("<{name}>"));
            for child in children {
                render(child, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Node::Text(t) => out.push_str(&quick_xml::escape::escape(t.as_str())),
        Node::CData(t) => out.push_str(&format!("<![CDATA[{t}]]>")),
    }
}

fn node_strategy() -> impl Strategy<Value = Node> {
    use proptest::prelude::*;
    let names = prop::sample::select(vec![
        "ChatId", "From", "UserId", "Name", "MsgType", "Text", "Content", "MsgItem", "Other", "a",
    ]);
    // Text that is not only white space and has no leading or trailing white space (the
    // reference trims text; the scanner does too), with XML's special characters in it.
    let text = "[a-z<>&'\"会计 ]{0,8}[a-z<>&'\"会计]".prop_map(|s| s.trim().to_owned());
    let cdata = "[a-z<>&会计 ]{1,10}".prop_map(|s| s.replace("]]>", ""));
    let leaf = prop_oneof![text.prop_map(Node::Text), cdata.prop_map(Node::CData)];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        (names.clone(), prop::collection::vec(inner, 0..4))
            .prop_map(|(n, children)| Node::Element(n.to_owned(), children))
    })
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scanner_agrees_with_quick_xml_on_well_formed_documents(children in prop::collection::vec(node_strategy(), 0..5)) {
        let mut xml = String::from("<?xml version=\"1.0\"?>\n<xml>");
        for child in &children {
            render(child, &mut xml);
            xml.push('\n');
        }
        xml.push_str("</xml>");
        let ours = scanner_walk(&xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
        let theirs = reference_walk(&xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
        prop_assert_eq!(ours, theirs, "{}", xml);
    }

    #[test]
    fn scanner_never_panics_on_arbitrary_input(input in "[<>/!?\\[\\]a-zA-Z&;\"' =-]{0,80}") {
        let _ = scanner_walk(&input);
        let _ = parse_message(&input);
    }
}

#[test]
fn errors_do_not_quote_the_message() {
    let secret = "手机13800138000密码hunter2";
    for xml in [
        format!("<xml><Text><Content>a &{secret}; b</Content></Text></xml>"),
        format!("<xml><Text><Content>x</Content></Text><{secret}>\n</other>"),
    ] {
        let error = parse_message(&xml)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!error.is_empty(), "{xml} parsed");
        assert!(
            !error.contains("hunter2") && !error.contains('\n'),
            "{error}"
        );
    }
}
