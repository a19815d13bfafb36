//! Criterion benchmarks of the group-robot callback hot path:
//! - `callback/open`: verify + decrypt + parse a ~600-byte text callback into a domain event;
//! - `callback/open_with_chat_info`: the same message carrying the one-time chat-info link WeCom
//!   adds to real callbacks (`GetChatInfoUrl`), which the channel keeps to learn group names;
//! - `callback/seal_reply`: encrypt + sign + XML for a passive text reply;
//! - `callback/floor_sha1_aes`: the signature and AES work alone, for comparison.
//!
//! Run: `cargo bench --bench callback`. Figures are recorded in BENCHMARKS.md.

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trumpet::domain::{BotId, Reply};
use trumpet::wire::wecom::crypto::{self, CallbackCrypto, EncodingAesKey};
use trumpet::wire::wecom::robot::{RobotEndpoint, parse_query};

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

/// A group text message whose encrypted callback body is about 600 bytes, the size the
/// target is set for.
fn group_text_message() -> String {
    "<xml><WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa]]></WebhookUrl>\
     <ChatId><![CDATA[wrkSFfCgAAtMQKg4xqDat]]></ChatId><ChatType>group</ChatType>\
     <From><UserId>zhangsan</UserId><Name><![CDATA[张三]]></Name></From>\
     <MsgType>text</MsgType><Text><Content><![CDATA[@会计小喇叭 发票]]></Content></Text>\
     <MsgId>CAIQ16HMjQYY</MsgId></xml>"
        .to_owned()
}

/// [`group_text_message`] with the chat-info link real callbacks carry.
fn group_text_message_with_chat_info() -> String {
    group_text_message().replace(
        "<ChatType>",
        "<GetChatInfoUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/get_chat_info?code=m49c5aRCdEP8_QQdZmTNR52yJ5TLGcIMzaLJk3x5KqY]]></GetChatInfoUrl><ChatType>",
    )
}

fn benches(c: &mut Criterion) {
    let crypto = CallbackCrypto::new(TOKEN, EncodingAesKey::parse(KEY).unwrap(), "");
    let endpoint = RobotEndpoint::new(BotId::parse("trumpet").unwrap(), crypto.clone(), 86_400);
    let now = Utc::now();
    let (query, body) = endpoint
        .forge_callback(
            &group_text_message(),
            &now.timestamp().to_string(),
            "1372623149",
            [7; 16],
        )
        .unwrap();
    let query = parse_query(Some(&query), false).unwrap();
    let mut group = c.benchmark_group("callback");
    group.throughput(Throughput::Elements(1));

    eprintln!("callback body: {} bytes", body.len());
    group.bench_function("open", |b| {
        b.iter(|| {
            endpoint
                .open(black_box(&query), black_box(body.as_bytes()), now)
                .unwrap()
        })
    });

    let (info_query, info_body) = endpoint
        .forge_callback(
            &group_text_message_with_chat_info(),
            &now.timestamp().to_string(),
            "1372623149",
            [7; 16],
        )
        .unwrap();
    let info_query = parse_query(Some(&info_query), false).unwrap();
    eprintln!(
        "callback body with the chat-info link: {} bytes",
        info_body.len()
    );
    group.bench_function("open_with_chat_info", |b| {
        b.iter(|| {
            endpoint
                .open(black_box(&info_query), black_box(info_body.as_bytes()), now)
                .unwrap()
        })
    });

    let reply = Reply::Text {
        content: "我是会计小喇叭🎺，@我 并说出关键词，比如「发票」「个税」「社保」。".into(),
        mentioned: vec!["zhangsan".into()],
    };
    group.bench_function("seal_reply", |b| {
        b.iter(|| endpoint.seal(black_box(&reply), &query, [9; 16]).unwrap())
    });

    let encrypt = crypto.encrypt([7; 16], &group_text_message()).unwrap();
    let key = EncodingAesKey::parse(KEY).unwrap();
    group.bench_function("floor_sha1_aes", |b| {
        b.iter(|| {
            let sig = crypto::signature(TOKEN, "1409659813", "1372623149", black_box(&encrypt));
            let plain = crypto::decrypt(&key, black_box(&encrypt), "").unwrap();
            (sig, plain)
        })
    });
    group.finish();
}

criterion_group!(callback, benches);
criterion_main!(callback);
