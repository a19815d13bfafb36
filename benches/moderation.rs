//! Criterion benchmark of the moderation checks: `moderation/judge/5000_words` normalises a
//! message and runs every text check of the shipped `moderation.toml` plus a words check of
//! 5,000 banned words, over the labelled corpus (spam and legitimate messages in turn). Target:
//! ≤ 10 µs per message; `…/100_chars` does the same for one 100-character message with a link and
//! a phone number in it. `moderation/prepare` is the normalisation alone. `moderation/qr/…` reads
//! the QR code in a 1080×1920 PNG screenshot (decode, search), which only images of untrusted
//! members go through.
//!
//! Run: `cargo bench --bench moderation`. Figures are recorded in BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use trumpet::domain::{ChatId, GroupSettings, Role};
use trumpet::engine::moderation::{Activity, Content, Prepared, Standing, judge};
use trumpet::engine::scope::Place;
use trumpet::runtime::moderation::qr::decode;
use trumpet::scripts::EMBEDDED_MODERATION;
use trumpet::scripts::moderation::parse_file;

/// A distinct four-character banned phrase for `i` (from the CJK Unified Ideographs).
fn banned(i: usize) -> String {
    (0..4)
        .map(|k| char::from_u32(0x4E00 + ((i * 13 + k * 5003) % 20_000) as u32).unwrap_or('禁'))
        .collect()
}

fn rules_toml(words: usize) -> String {
    let list: Vec<String> = (0..words).map(|i| format!("\"{}\"", banned(i))).collect();
    format!(
        "{EMBEDDED_MODERATION}\n[[check]]\nid = \"bench-words\"\nkind = \"words\"\naction = \"warn\"\nreason = \"违禁词\"\nwords = [{}]\n",
        list.join(", ")
    )
}

#[derive(serde::Deserialize)]
struct Corpus {
    spam: Vec<String>,
    legit: Vec<String>,
}

fn benches(c: &mut Criterion) {
    let corpus: Corpus =
        toml::from_str(include_str!("../tests/data/moderation-corpus.toml")).unwrap();
    let messages: Vec<String> = corpus.spam.into_iter().chain(corpus.legit).collect();
    let rules = parse_file(&rules_toml(5_000), Path::new("bench.toml")).unwrap();
    let settings = GroupSettings::default();
    let chat = ChatId::new("g1");
    let place = Place {
        chat: Some(&chat),
        settings: &settings,
    };
    let now = Utc::now();
    let standing = Standing {
        role: Role::Member,
        approved: false,
        messages: 100,
        clean: 0,
        first_seen: Some(now - chrono::Duration::days(30)),
        warnings: &[],
    };
    let activity = Activity::default();
    let mut group = c.benchmark_group("moderation");
    let mut next = 0;
    group.bench_function("judge/5000_words", |b| {
        b.iter(|| {
            let text = &messages[next % messages.len()];
            next += 1;
            let prepared = Prepared::new(black_box(text), &rules.variants);
            let content = Content {
                prepared: &prepared,
                parts: &[],
                qr_codes: &[],
            };
            black_box(judge(
                &rules, place, &content, &standing, &activity, "u1", now,
            ))
        })
    });
    // A long message: 100 characters of accounting chatter with a link and a phone number.
    let long: String = "请问一下各位老师，我们公司是小规模纳税人，这个季度的增值税申报表应该怎么填写？资料见 www.example.com，电话 138 1234 5678，"
        .chars()
        .cycle()
        .take(100)
        .collect();
    group.bench_function("judge/5000_words/100_chars", |b| {
        b.iter(|| {
            let prepared = Prepared::new(black_box(&long), &rules.variants);
            let content = Content {
                prepared: &prepared,
                parts: &[],
                qr_codes: &[],
            };
            black_box(judge(
                &rules, place, &content, &standing, &activity, "u1", now,
            ))
        })
    });
    // The same with the learned layer as one more check (a model of the shipped corpus).
    let learned = parse_file(
        &format!(
            "{}\n[[check]]\nid = \"model\"\nkind = \"learned\"\nthreshold = 1.0\naction = \"delete\"\nreason = \"疑似广告\"\n",
            rules_toml(5_000)
        ),
        Path::new("bench.toml"),
    )
    .unwrap();
    group.bench_function("judge/5000_words_and_learned", |b| {
        b.iter(|| {
            let text = &messages[next % messages.len()];
            next += 1;
            let prepared = Prepared::new(black_box(text), &learned.variants);
            let content = Content {
                prepared: &prepared,
                parts: &[],
                qr_codes: &[],
            };
            black_box(judge(
                &learned, place, &content, &standing, &activity, "u1", now,
            ))
        })
    });
    group.bench_function("prepare", |b| {
        b.iter(|| {
            let text = &messages[next % messages.len()];
            next += 1;
            black_box(Prepared::new(black_box(text), &rules.variants))
        })
    });
    // A phone screenshot (1080×1920) with a QR code in it: decode the PNG, scale, search.
    let screenshot = screenshot_with_qr();
    group.sample_size(20);
    group.bench_function("qr/1080x1920_png", |b| {
        b.iter(|| black_box(decode(black_box(&screenshot)).unwrap()))
    });
    group.finish();
}

/// A 1080×1920 PNG, light grey, with a QR code (8 px per module) in the middle.
fn screenshot_with_qr() -> Vec<u8> {
    let code = qrcode::QrCode::new(b"https://weixin.qq.com/g/AbCdEf123456").unwrap();
    let width = code.width() as u32;
    let colors = code.to_colors();
    let (scale, left, top) = (8, 300, 700);
    let img = image::GrayImage::from_fn(1080, 1920, |x, y| {
        let (mx, my) = (x.wrapping_sub(left) / scale, y.wrapping_sub(top) / scale);
        let dark = x >= left
            && y >= top
            && mx < width
            && my < width
            && colors[(my * width + mx) as usize] == qrcode::Color::Dark;
        image::Luma([if dark { 0 } else { 235 }])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    assert_eq!(decode(&out).unwrap().len(), 1);
    out
}

criterion_group!(moderation, benches);
criterion_main!(moderation);
