//! Criterion benchmarks of keyword replies:
//! - `keywords/match/{10,10000}`: normalise a 100-character message and find the answering rule
//!   among 10 or 10,000 `contains` rules (target: ≤ 2 µs with 10,000, at most 2× the time with 10);
//! - `keywords/reload_10000`: parse, validate and compile a keywords.toml of 10,000 rules
//!   (target: ≤ 200 ms).
//!
//! Run: `cargo bench --bench keywords`. Figures are recorded in BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use trumpet::domain::GroupSettings;
use trumpet::engine::keywords::{KeywordSet, MatchInput};
use trumpet::engine::normalize::normalize;
use trumpet::engine::scope::Place;
use trumpet::scripts::keywords::parse_file as parse;

/// A distinct three-character Chinese keyword for rule `i` (from the CJK Unified Ideographs).
fn pattern(i: usize) -> String {
    (0..3)
        .map(|k| char::from_u32(0x4E00 + ((i * 7 + k * 4099) % 20_000) as u32).unwrap_or('税'))
        .collect()
}

fn keywords_toml(rules: usize) -> String {
    let mut text = String::with_capacity(rules * 160);
    for i in 0..rules {
        text.push_str(&format!(
            "[[keyword]]\nid = \"r{i}\"\npatterns = [\"{}\", \"kw{i}x\"]\npriority = {}\ncooldown_secs = 60\nformat = \"text\"\ncontent = \"回复 {i}\"\n\n",
            pattern(i),
            i % 7
        ));
    }
    text
}

/// A 100-character message of ordinary accounting chatter with rule 3's keyword in it.
fn message() -> String {
    let filler = "请问一下各位老师，我们公司是小规模纳税人，这个季度的增值税申报表应该怎么填写，进项发票需要勾选吗？另外";
    let mut text: String = filler.chars().collect();
    text.push_str(&pattern(3));
    let mut text: String = text.chars().cycle().take(97).collect();
    text.push_str(&pattern(3));
    assert_eq!(text.chars().count(), 100);
    text
}

fn benches(c: &mut Criterion) {
    let message = message();
    let mut group = c.benchmark_group("keywords");
    for rules in [10usize, 10_000] {
        let set: KeywordSet = parse(&keywords_toml(rules), Path::new("bench.toml")).unwrap();
        let settings = GroupSettings::default();
        let place = Place {
            chat: None,
            settings: &settings,
        };
        let found = set
            .find(
                &MatchInput {
                    text: &normalize(&message),
                    mentioned: true,
                    minute_of_day: 600,
                },
                place,
            )
            .map(|r| r.id.clone());
        assert_eq!(
            found.as_deref(),
            Some("r3"),
            "the benchmark measures a real match"
        );
        group.bench_with_input(BenchmarkId::new("match", rules), &set, |b, set| {
            b.iter(|| {
                let text = normalize(black_box(&message));
                set.find(
                    &MatchInput {
                        text: &text,
                        mentioned: true,
                        minute_of_day: 600,
                    },
                    place,
                )
                .map(|r| r.priority)
            })
        });
    }
    group.bench_function("normalize_100_chars", |b| {
        b.iter(|| normalize(black_box(&message)))
    });
    let toml = keywords_toml(10_000);
    group.sample_size(10);
    group.bench_function("reload_10000", |b| {
        b.iter(|| parse(black_box(&toml), Path::new("bench.toml")).unwrap())
    });
    group.finish();
}

criterion_group!(keywords, benches);
criterion_main!(keywords);
