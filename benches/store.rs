//! Criterion benchmark of the pipeline's store work: applying a batch of 500 group text events
//! (200 groups, 5,000 members, each with its de-duplication record) in one transaction,
//! including the commit. The figure per batch, divided by 500, is the store's cost per callback.
//!
//! Run: `cargo bench --bench store`. Figures are recorded in BENCHMARKS.md.

use std::time::Duration;

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use trumpet::domain::{BotId, ChatId, Conversation, Event, EventKind, Reply, Sender};
use trumpet::outbox::{Outbox, SendSettings};
use trumpet::runtime::pipeline::{Pipeline, Work};
use trumpet::store::{DedupeRecord, Store};
use trumpet::wire::wecom::robot::webhook::WebhookClient;

const BATCH: usize = 500;

fn batch(start: usize) -> Vec<Work> {
    let bot = BotId::parse("trumpet").unwrap();
    let reply = Reply::Text {
        content: "这个问题我还不会回答😅 发送「帮助」看看我能做什么，或者等群里的老师来解答。"
            .into(),
        mentioned: vec!["user".into()],
    };
    (start..start + BATCH)
        .map(|i| {
            let chat = format!("wrkBench{:05}", i % 200);
            Work::Event {
                event: Box::new(Event {
                    bot: bot.clone(),
                    msg_id: format!("msg-{i}"),
                    conversation: Conversation::Group(ChatId::new(chat.clone())),
                    from: Sender {
                        user_id: format!("user{:04}", (i * 7919) % 5000),
                        name: "成员".into(),
                        alias: String::new(),
                    },
                    webhook_url: Some(format!(
                        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-{chat}"
                    )),
                    account: None,
                    message_id: None,
                    kind: EventKind::Text {
                        text: "发票".into(),
                    },
                    mentioned: true,
                    received_at: Utc::now(),
                }),
                dedupe_key: format!("trumpet\u{1f}msg-{i}"),
                dedupe: DedupeRecord {
                    at: Utc::now().timestamp(),
                    reply: Some(reply.clone()),
                },
                posts: Vec::new(),
                moderation: Vec::new(),
                done: None,
            }
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.redb")).unwrap();
    let outbox = Outbox::start(
        WebhookClient::new(Duration::from_secs(1)).unwrap(),
        SendSettings {
            per_minute: 20,
            window: Duration::from_secs(61),
            retry_base: Duration::from_secs(1),
            max_attempts: 1,
            webhook_hosts: vec!["qyapi.weixin.qq.com".into()],
            bot_limits: Default::default(),
            global_per_second: 10_000,
            retry_after_timeout: false,
        },
        store.clone(),
    )
    .unwrap();
    let pipeline = Pipeline {
        store,
        outbox,
        webhook_hosts: vec!["qyapi.weixin.qq.com".into()],
        speakers: Default::default(),
        dedupe: Default::default(),
        aibots: Default::default(),
        apps: Default::default(),
    };
    let mut next = 0;
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);
    group.bench_function("apply_batch_500", |b| {
        b.iter_batched(
            || {
                next += BATCH;
                batch(next)
            },
            |work| pipeline.apply(&work).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(store, benches);
criterion_main!(store);
