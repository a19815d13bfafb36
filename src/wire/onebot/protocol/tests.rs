use super::*;

fn event(text: &str) -> Event {
    match parse_frame(text).unwrap() {
        Incoming::Event(e) => e,
        other => panic!("not an event: {other:?}"),
    }
}

#[test]
fn meta_events_are_read() {
    let connect = event(
        r#"{"id":"1","time":1732250000.5,"type":"meta","detail_type":"connect","sub_type":"","version":{"impl":"wx-impl","version":"0.3","onebot_version":"12"}}"#,
    );
    assert_eq!(
        connect.body,
        EventBody::Connect {
            implementation: "wx-impl".into(),
            version: "0.3".into()
        }
    );
    assert_eq!(connect.time, 1732250000.5);
    let beat = event(
        r#"{"id":"2","time":1,"type":"meta","detail_type":"heartbeat","sub_type":"","interval":5000}"#,
    );
    assert_eq!(beat.body, EventBody::Heartbeat { interval_ms: 5000 });
    let status = event(
        r#"{"id":"3","time":1,"type":"meta","detail_type":"status_update","sub_type":"","status":{"good":true,"bots":[{"self":{"platform":"wechat","user_id":"wxid_bot"},"online":true},{"self":{"platform":"wechat","user_id":"wxid_b2"},"online":false}]}}"#,
    );
    let EventBody::StatusUpdate { good, bots } = status.body else {
        panic!("status_update")
    };
    assert!(good);
    assert_eq!(bots.len(), 2);
    assert_eq!(bots[1].0.user_id, "wxid_b2");
    assert!(!bots[1].1);
}

#[test]
fn a_group_message_keeps_every_segment_and_knows_who_it_mentions() {
    let e = event(
        r#"{"id":"m1","time":1,"type":"message","detail_type":"group","sub_type":"","self":{"platform":"wechat","user_id":"wxid_bot"},
            "message_id":"987","group_id":"123@chatroom","user_id":"wxid_a","alt_message":"@小喇叭 发票怎么开",
            "message":[{"type":"mention","data":{"user_id":"wxid_bot"}},{"type":"text","data":{"text":" 发票怎么开 "}},
            {"type":"wx.link","data":{"title":"广告","url":"https://spam.example"}},{"type":"image","data":{"file_id":"f1"}},
            {"type":"future_thing","data":{"x":1}},{"type":"text","data":{}}]}"#,
    );
    assert_eq!(e.self_id.as_ref().unwrap().user_id, "wxid_bot");
    let EventBody::GroupMessage(m) = e.body else {
        panic!("group message")
    };
    assert_eq!(m.group_id, "123@chatroom");
    assert_eq!(m.text(), "发票怎么开");
    assert!(m.mentions("wxid_bot"));
    assert!(!m.mentions("wxid_other"));
    assert_eq!(m.segments.len(), 6);
    assert!(
        matches!(&m.segments[2], Segment::Other { kind, data } if kind == "wx.link" && data["url"] == "https://spam.example")
    );
    assert_eq!(
        m.segments[3],
        Segment::Image {
            file_id: "f1".into()
        }
    );
    // A text segment without its text is kept as it came, not guessed at.
    assert!(matches!(&m.segments[5], Segment::Other { kind, .. } if kind == "text"));
    // Segments go back out unchanged.
    assert_eq!(m.segments[2].to_json()["data"]["title"], "广告");
}

#[test]
fn red_envelope_grabs_are_read_in_the_spellings_implementations_use() {
    let grab = |detail: &str, extra: &str| {
        event(&format!(
                r#"{{"id":"g1","time":1,"type":"notice","detail_type":"{detail}","sub_type":"","group_id":"g","user_id":"wxid_a"{extra}}}"#
            ))
            .body
    };
    let expected = |amount_fen| EventBody::EnvelopeGrab {
        group_id: "g".into(),
        user_id: "wxid_a".into(),
        user_name: String::new(),
        amount_fen,
    };
    assert_eq!(
        grab("wx.red_packet_grabbed", r#","amount":"1.23""#),
        expected(Some(123))
    );
    assert_eq!(
        grab("wx.hongbao", r#","amount_fen":88"#),
        expected(Some(88))
    );
    assert_eq!(
        grab("wx.LuckyMoney.grab", r#","amount":0.5"#),
        expected(Some(50))
    );
    assert_eq!(
        grab("wx.redenvelope", r#","amount":"many""#),
        expected(None)
    );
    // Not an extension, or not about envelopes: left alone.
    assert!(matches!(grab("red_packet", ""), EventBody::Other { .. }));
    assert!(matches!(grab("wx.pat", ""), EventBody::Other { .. }));
}

#[test]
fn member_notices_and_deletions_are_read() {
    let joined = event(
        r#"{"id":"n1","time":1,"type":"notice","detail_type":"group_member_increase","sub_type":"invite","self":{"platform":"wechat","user_id":"wxid_bot"},"group_id":"g","user_id":"wxid_new","operator_id":"wxid_a"}"#,
    );
    assert_eq!(
        joined.body,
        EventBody::MemberIncrease {
            group_id: "g".into(),
            user_id: "wxid_new".into(),
            operator_id: "wxid_a".into(),
            sub_type: "invite".into()
        }
    );
    let left = event(
        r#"{"id":"n2","time":1,"type":"notice","detail_type":"group_member_decrease","sub_type":"kick","group_id":"g","user_id":"wxid_x","operator_id":"wxid_a"}"#,
    );
    assert!(
        matches!(left.body, EventBody::MemberDecrease { ref sub_type, .. } if sub_type == "kick")
    );
    let deleted = event(
        r#"{"id":"n3","time":1,"type":"notice","detail_type":"group_message_delete","sub_type":"recall","group_id":"g","message_id":"987","user_id":"wxid_a","operator_id":"wxid_a"}"#,
    );
    assert!(
        matches!(deleted.body, EventBody::MessageDelete { ref message_id, .. } if message_id == "987")
    );
    let other = event(
        r#"{"id":"n4","time":1,"type":"notice","detail_type":"friend_increase","sub_type":"","user_id":"x"}"#,
    );
    assert_eq!(
        other.body,
        EventBody::Other {
            kind: "notice".into(),
            detail_type: "friend_increase".into()
        }
    );
}

#[test]
fn broken_frames_get_a_clear_error() {
    assert!(matches!(
        parse_frame("not json"),
        Err(FrameError::NotJson(_))
    ));
    assert_eq!(parse_frame("{}"), Err(FrameError::Unrecognised));
    let missing = parse_frame(
            r#"{"id":"1","time":1,"type":"message","detail_type":"group","message":[],"user_id":"u","message_id":"m"}"#,
        )
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "event message.group: missing or mistyped field `group_id`"
    );
    assert!(matches!(
        parse_frame(r#"{"time":1,"type":"meta","detail_type":"heartbeat","interval":5}"#),
        Err(FrameError::MissingField { field: "id", .. })
    ));
}

#[test]
fn responses_are_matched_by_echo_and_retcodes_classified() {
    let ok = parse_frame(r#"{"status":"ok","retcode":0,"data":{"message_id":"55","time":1.0},"message":"","echo":"a-1"}"#).unwrap();
    let Incoming::Response(ok) = ok else {
        panic!("response")
    };
    assert_eq!(ok.echo, "a-1");
    assert_eq!(ok.outcome.unwrap()["message_id"], "55");
    for (retcode, retryable, name) in [
        (10002, false, "unsupported action"),
        (10003, false, "request refused"),
        (34001, true, "the platform refused"),
        (35001, false, "cannot be done"),
        (36000, true, "busy"),
        (20001, false, "failed"),
    ] {
        let frame = format!(
            r#"{{"status":"failed","retcode":{retcode},"data":null,"message":"m","echo":"e"}}"#
        );
        let Incoming::Response(r) = parse_frame(&frame).unwrap() else {
            panic!("response")
        };
        let e = r.outcome.unwrap_err();
        assert_eq!(e.is_retryable(), retryable, "{retcode}");
        assert!(e.to_string().contains(name), "{retcode}: {e}");
    }
    // `status: ok` with a non-zero retcode is not trusted as success.
    let Incoming::Response(r) =
        parse_frame(r#"{"status":"ok","retcode":35001,"echo":"e"}"#).unwrap()
    else {
        panic!("response")
    };
    assert!(r.outcome.is_err());
}

#[test]
fn action_requests_name_the_account_when_asked() {
    let account = SelfId {
        platform: "wechat".into(),
        user_id: "wxid_bot".into(),
    };
    let request = action_request(
        "send_message",
        json!({"detail_type": "group", "group_id": "g", "message": [Segment::Text("hi".into()).to_json()]}),
        "7",
        Some(&account),
    );
    assert_eq!(request["action"], "send_message");
    assert_eq!(request["echo"], "7");
    assert_eq!(request["self"]["user_id"], "wxid_bot");
    assert_eq!(request["params"]["message"][0]["data"]["text"], "hi");
    assert!(
        action_request("get_status", json!({}), "8", None)
            .get("self")
            .is_none()
    );
}
