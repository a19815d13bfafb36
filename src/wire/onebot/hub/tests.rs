use super::*;
use crate::domain::BotId;
use crate::wire::onebot::protocol::{Incoming, parse_frame};

fn key(account: &str) -> AccountKey {
    AccountKey {
        bot: BotId::parse("ob").unwrap(),
        user_id: account.into(),
    }
}

/// A hub with one connection carrying `wxid_bot`, whose implementation answers with
/// `answer(request)` (`None`: no answer). Returns the hub and every request seen.
fn connected(
    timeout: Duration,
    answer: impl Fn(&Value) -> Option<Value> + Send + 'static,
) -> (Arc<Hub>, Arc<Mutex<Vec<Value>>>) {
    let hub = Arc::new(Hub::new(timeout));
    let (tx, mut rx) = mpsc::channel::<String>(16);
    let connection = Connection::new(hub.connection_id(), tx);
    assert!(hub.attach(key("wxid_bot"), "wechat", &connection));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let request: Value = serde_json::from_str(&frame).unwrap();
            log.lock().unwrap().push(request.clone());
            if let Some(data) = answer(&request) {
                let response =
                    json!({"status": "ok", "retcode": 0, "data": data, "echo": request["echo"]});
                let Ok(Incoming::Response(r)) = parse_frame(&response.to_string()) else {
                    panic!("not a response")
                };
                connection.resolve(r);
            }
        }
    });
    (hub, seen)
}

#[tokio::test]
async fn an_image_is_uploaded_then_sent_by_its_file_id() {
    let (hub, seen) = connected(Duration::from_secs(1), |r| match r["action"].as_str() {
        Some("upload_file") => Some(json!({"file_id": "f-9"})),
        Some("send_message") => Some(json!({"message_id": "m-1", "time": 1.0})),
        _ => None,
    });
    let sent = hub
        .send_message(
            &key("wxid_bot"),
            To::Group("g1"),
            &OutMessage::Image {
                bytes: vec![1, 2, 3],
            },
        )
        .await
        .unwrap();
    assert_eq!(sent, "m-1");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["action"], "upload_file");
    assert_eq!(seen[0]["params"]["data"], "AQID");
    assert_eq!(seen[0]["self"]["user_id"], "wxid_bot");
    assert_eq!(
        seen[1]["params"]["message"],
        json!([{"type": "image", "data": {"file_id": "f-9"}}])
    );
}

#[tokio::test(start_paused = true)]
async fn a_pause_holds_the_account_until_it_passes_and_only_grows() {
    let hub = Hub::new(Duration::from_secs(1));
    let (a, b) = (key("wxid_a"), key("wxid_b"));
    assert_eq!(hub.paused_for(&a), None);
    hub.pause(&a, Duration::from_secs(4));
    hub.pause(&a, Duration::from_secs(2));
    assert_eq!(
        hub.paused_for(&a),
        Some(Duration::from_secs(4)),
        "a shorter pause does not shorten it"
    );
    assert_eq!(hub.paused_for(&b), None, "other accounts go on");
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(hub.paused_for(&a), Some(Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(hub.paused_for(&a), None);
}

#[tokio::test]
async fn a_message_is_deleted_by_its_id() {
    let (hub, seen) = connected(Duration::from_secs(1), |_| Some(Value::Null));
    hub.delete_message(&key("wxid_bot"), "m-7").await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["action"], "delete_message");
    assert_eq!(seen[0]["params"], json!({"message_id": "m-7"}));
}

#[tokio::test]
async fn no_answer_is_a_timeout_and_an_unknown_account_is_not_connected() {
    let (hub, _) = connected(Duration::from_millis(50), |_| None);
    let late = hub
        .call(&key("wxid_bot"), "get_status", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(late, CallError::Timeout(_)), "{late}");
    assert!(late.is_retryable());
    let nobody = hub
        .call(&key("wxid_other"), "get_status", json!({}))
        .await
        .unwrap_err();
    assert_eq!(nobody, CallError::NotConnected);
    assert!(
        !hub.wait_connected(&key("wxid_other"), Duration::from_millis(20))
            .await
    );
    assert!(
        hub.wait_connected(&key("wxid_bot"), Duration::from_millis(20))
            .await
    );
}

#[tokio::test]
async fn an_upload_without_a_file_id_fails_instead_of_sending_an_empty_image() {
    let (hub, seen) = connected(Duration::from_secs(1), |r| match r["action"].as_str() {
        Some("upload_file") => Some(json!({})),
        _ => Some(Value::Null),
    });
    let failed = hub
        .send_message(
            &key("wxid_bot"),
            To::Group("g1"),
            &OutMessage::Image { bytes: vec![0] },
        )
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("file_id"), "{failed}");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "nothing was sent after the failed upload"
    );
}
