//! The group-robot callback endpoint: URL verification, every bad input, passive replies and
//! de-duplication of WeCom's retries.

use base64::Engine as _;
use chrono::Utc;
use reqwest::StatusCode;

use crate::helpers::*;

const VECTOR_TOKEN: &str = "QDG6eK";

#[tokio::test]
async fn url_verification_answers_the_official_sample_with_the_bare_plaintext() {
    // The official sample (vector A1) is from 2014: widen the timestamp window to accept it.
    let app = spawn_app_with(Options {
        wecom: "timestamp_tolerance_secs = 4000000000".into(),
        more: format!(
            "[[bots]]\nid = \"sample\"\nchannel = \"wecom-robot\"\ntoken = \"{VECTOR_TOKEN}\"\n\
             encoding_aes_key = \"{AES_KEY}\"\nreceive_id = \"wx5823bf96d3bd56c7\"\n"
        ),
        ..Options::default()
    })
    .await;
    let query = "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D";
    let response = app
        .http
        .get(app.url(&format!("/wecom/robot/sample?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "1616140317555161061");

    // The same request is refused under the default 24-hour window.
    let strict = spawn_app_with(Options {
        more: format!(
            "[[bots]]\nid = \"sample\"\nchannel = \"wecom-robot\"\ntoken = \"{VECTOR_TOKEN}\"\n\
             encoding_aes_key = \"{AES_KEY}\"\n"
        ),
        ..Options::default()
    })
    .await;
    let response = strict
        .http
        .get(strict.url(&format!("/wecom/robot/sample?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn url_verification_with_a_fresh_signature_returns_the_plaintext() {
    let app = spawn_app().await;
    let ts = Utc::now().timestamp().to_string();
    let echostr = app
        .crypto
        .encrypt(*b"0123456789abcdef", "1616140317555161061")
        .unwrap();
    let signature = app.crypto.sign(&ts, "n1", &echostr);
    let encoded: String = url::form_urlencoded::byte_serialize(echostr.as_bytes()).collect();
    let response = app
        .http
        .get(app.url(&format!(
            "/wecom/robot/{BOT}?msg_signature={signature}&timestamp={ts}&nonce=n1&echostr={encoded}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "1616140317555161061");

    let forged = app
        .http
        .get(app.url(&format!(
            "/wecom/robot/{BOT}?msg_signature={}&timestamp={ts}&nonce=n1&echostr={encoded}",
            "0".repeat(40)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn help_gets_an_encrypted_text_reply_that_mentions_the_asker() {
    let app = spawn_app().await;
    let msg = robot_message(
        "chat-help",
        "zhangsan",
        "m-help-1",
        &app.fake.webhook_url("k1"),
        &text_body("@会计小喇叭\u{2005}帮助"),
    );
    let response = app.post_callback(&msg).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply = app
        .open_reply(&response.text().await.unwrap())
        .expect("a reply");
    assert!(reply.contains("<MsgType>text</MsgType>"), "{reply}");
    assert!(reply.contains("会计小喇叭"), "{reply}");
    assert!(
        reply.contains("<MentionedList><Item><![CDATA[zhangsan]]></Item></MentionedList>"),
        "{reply}"
    );

    let other = robot_message(
        "chat-help",
        "zhangsan",
        "m-help-2",
        &app.fake.webhook_url("k1"),
        &text_body("@会计小喇叭 今天天气"),
    );
    let reply = app.reply_to(&other).await.unwrap();
    assert!(
        reply.contains("帮助"),
        "the fallback points to help: {reply}"
    );
    // Issue 27 §11: the mention typed after the word, and punctuation after it, still ask for
    // help (the fallback would say 「发送 帮助 查看」 instead of the list of commands).
    let help = app.reply_to(&msg).await.unwrap();
    for (n, text) in [
        "帮助\u{2005}@会计小喇叭",
        "@会计小喇叭 帮助！",
        "帮助? @会计小喇叭",
    ]
    .into_iter()
    .enumerate()
    {
        let asked = robot_message(
            "chat-help",
            "zhangsan",
            &format!("m-help-form-{n}"),
            &app.fake.webhook_url("k1"),
            &text_body(text),
        );
        let reply = app.reply_to(&asked).await.unwrap();
        assert_eq!(reply, help, "{text}");
    }
}

#[tokio::test]
async fn a_retry_of_the_same_msg_id_gets_the_same_reply_and_counts_once() {
    let app = spawn_app().await;
    let msg = robot_message(
        "chat-dup",
        "lisi",
        "m-dup-1",
        &app.fake.webhook_url("k2"),
        &text_body("@bot help"),
    );
    let first = app.reply_to(&msg).await.unwrap();
    let second = app.reply_to(&msg).await.unwrap();
    assert_eq!(first, second);
    let group = app.wait_group("chat-dup", |g| g["messages"] == 1).await;
    assert_eq!(group["members_seen"], 1);

    // Survives a restart: the handled id was persisted.
    let mut app = app;
    app.restart().await;
    let third = app.reply_to(&msg).await.unwrap();
    assert_eq!(first, third);
    let fresh = robot_message(
        "chat-dup",
        "lisi",
        "m-dup-2",
        &app.fake.webhook_url("k2"),
        &text_body("@bot help"),
    );
    app.post_callback(&fresh).await;
    let group = app.wait_group("chat-dup", |g| g["messages"] == 2).await;
    assert_eq!(group["members_seen"], 1, "same member, second message");
}

#[tokio::test]
async fn unknown_message_kinds_get_an_empty_200() {
    let app = spawn_app().await;
    let msg = robot_message(
        "chat-x",
        "u",
        "m-video",
        &app.fake.webhook_url("k3"),
        "<MsgType>video</MsgType>",
    );
    let response = app.post_callback(&msg).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "");
}

/// Posts `body` with a valid signature over `encrypt`.
async fn post_signed(app: &TestApp, encrypt: &str, body: String) -> StatusCode {
    let ts = Utc::now().timestamp().to_string();
    let sig = app.crypto.sign(&ts, "nonce", encrypt);
    app.http
        .post(app.url(&format!(
            "/wecom/robot/{BOT}?msg_signature={sig}&timestamp={ts}&nonce=nonce"
        )))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// Encrypts `frame` (already a multiple of 32 bytes, padding included) with the test key, so
/// that everything up to the framing checks is valid.
fn seal_raw_frame(mut frame: Vec<u8>) -> String {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
    let key = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{AES_KEY}="))
    .unwrap();
    let len = frame.len();
    assert_eq!(len % 32, 0);
    cbc::Encryptor::<aes::Aes256>::new(key[..32].into(), key[..16].into())
        .encrypt_padded_mut::<NoPadding>(&mut frame, len)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(frame)
}

fn envelope(encrypt: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
}

#[tokio::test]
async fn every_bad_input_gets_its_status_and_the_service_keeps_serving() {
    let app = spawn_app().await;
    let good = robot_message(
        "c",
        "u",
        "m-bad",
        &app.fake.webhook_url("k4"),
        &text_body("hi"),
    );
    let ts = Utc::now().timestamp();
    let (query, body) = app
        .wecom
        .forge_callback(&good, &ts.to_string(), "n", [1; 16])
        .unwrap();
    let post = |path: String, body: String| {
        let http = app.http.clone();
        async move { http.post(path).body(body).send().await.unwrap().status() }
    };

    // Unknown bot.
    assert_eq!(
        post(
            app.url(&format!("/wecom/robot/nobody?{query}")),
            body.clone()
        )
        .await,
        StatusCode::NOT_FOUND
    );
    // Missing and malformed query parameters.
    assert_eq!(
        post(app.url(&format!("/wecom/robot/{BOT}")), body.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    let no_nonce = query.replace("&nonce=n", "");
    assert_eq!(
        post(
            app.url(&format!("/wecom/robot/{BOT}?{no_nonce}")),
            body.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let bad_ts = query.replace(&format!("timestamp={ts}"), "timestamp=yesterday");
    assert_eq!(
        post(
            app.url(&format!("/wecom/robot/{BOT}?{bad_ts}")),
            body.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let short_sig = format!("msg_signature=abc&timestamp={ts}&nonce=n");
    assert_eq!(
        post(
            app.url(&format!("/wecom/robot/{BOT}?{short_sig}")),
            body.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Signature mismatch (another nonce than the one signed).
    let other_nonce = query.replace("&nonce=n", "&nonce=m");
    assert_eq!(
        post(
            app.url(&format!("/wecom/robot/{BOT}?{other_nonce}")),
            body.clone()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // A timestamp more than 24 hours away, correctly signed.
    let old = (ts - 90_000).to_string();
    let (q_old, b_old) = app.wecom.forge_callback(&good, &old, "n", [1; 16]).unwrap();
    assert_eq!(
        post(app.url(&format!("/wecom/robot/{BOT}?{q_old}")), b_old).await,
        StatusCode::UNAUTHORIZED
    );
    // Body over 64 KiB.
    assert_eq!(
        post(
            app.url(&format!("/wecom/robot/{BOT}?{query}")),
            "x".repeat(65 * 1024)
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Malformed XML and a missing Encrypt.
    assert_eq!(
        post(
            app.url(&format!("/wecom/robot/{BOT}?{query}")),
            "<xml><Encrypt>".into()
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(
            app.url(&format!("/wecom/robot/{BOT}?{query}")),
            "<xml></xml>".into()
        )
        .await,
        StatusCode::BAD_REQUEST
    );

    // Correctly signed, but the ciphertext is broken in each way.
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad_base64 = "@@@not-base64@@@";
    assert_eq!(
        post_signed(&app, bad_base64, envelope(bad_base64)).await,
        StatusCode::BAD_REQUEST
    );
    let odd_length = b64.encode([0u8; 17]);
    assert_eq!(
        post_signed(&app, &odd_length, envelope(&odd_length)).await,
        StatusCode::BAD_REQUEST
    );
    let garbage = b64.encode([0x5au8; 64]);
    assert_eq!(
        post_signed(&app, &garbage, envelope(&garbage)).await,
        StatusCode::BAD_REQUEST
    );
    // Decrypts fine, but the message inside is not XML. (Impossible length fields and bad
    // UTF-8 behind valid padding are covered by the crypto unit tests.)
    let not_xml = app.crypto.encrypt([2; 16], "this is not xml <").unwrap();
    assert_eq!(
        post_signed(&app, &not_xml, envelope(&not_xml)).await,
        StatusCode::BAD_REQUEST
    );

    // Valid AES, but hostile framing inside: bad padding, and a length field past the end.
    let mut bad_pad = vec![0u8; 16];
    bad_pad.extend_from_slice(&4u32.to_be_bytes());
    bad_pad.extend_from_slice(b"<xml>");
    bad_pad.resize(32, 0x21); // 0x21 = 33: more than a 32-byte block can pad
    let sealed = seal_raw_frame(bad_pad);
    assert_eq!(
        post_signed(&app, &sealed, envelope(&sealed)).await,
        StatusCode::BAD_REQUEST
    );
    let mut too_long = vec![0u8; 16];
    too_long.extend_from_slice(&5000u32.to_be_bytes());
    too_long.extend_from_slice(b"<xml></xml>");
    too_long.resize(64, 33); // filler, then a valid 31-byte padding
    too_long[64 - 31..].fill(31);
    let sealed = seal_raw_frame(too_long);
    assert_eq!(
        post_signed(&app, &sealed, envelope(&sealed)).await,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "still serving"
    );
    assert!(
        app.groups().await.is_empty(),
        "no bad input reached the store"
    );
}

#[tokio::test]
async fn a_wrong_receive_id_is_refused_when_one_is_configured() {
    let app = spawn_app_with(Options {
        bot: "receive_id = \"ww-expected\"".into(),
        ..Options::default()
    })
    .await;
    let msg = robot_message(
        "c",
        "u",
        "m-rid",
        &app.fake.webhook_url("k5"),
        &text_body("hi"),
    );
    // Encrypted for another receiver.
    let other = trumpet::wire::wecom::crypto::CallbackCrypto::new(
        TOKEN,
        trumpet::wire::wecom::crypto::EncodingAesKey::parse(AES_KEY).unwrap(),
        "ww-someone-else",
    );
    let encrypt = other.encrypt([3; 16], &msg).unwrap();
    assert_eq!(
        post_signed(&app, &encrypt, envelope(&encrypt)).await,
        StatusCode::BAD_REQUEST
    );
    let right = trumpet::wire::wecom::crypto::CallbackCrypto::new(
        TOKEN,
        trumpet::wire::wecom::crypto::EncodingAesKey::parse(AES_KEY).unwrap(),
        "ww-expected",
    );
    let encrypt = right.encrypt([3; 16], &msg).unwrap();
    assert_eq!(
        post_signed(&app, &encrypt, envelope(&encrypt)).await,
        StatusCode::OK
    );
}
