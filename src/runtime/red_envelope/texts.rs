//! The variables a test's messages see (`envelope`, `claim`, `results`, documented in
//! `bot-scripts/red_envelope.toml`) and durations and amounts as members read them.

use minijinja::{Value, context};

use crate::engine::red_envelope::{Results, Verdict, yuan_digits};
use crate::store::{ClaimRecord, TestRecord};

/// `envelope`: the test as members see it. `mention_needed`: members must @-mention the bot
/// for it to hear the phrase (the group robot).
pub fn envelope(test: &TestRecord, mention_needed: bool) -> Value {
    context! {
        id => &test.id,
        phrase => &test.claim_phrase,
        total => yuan_digits(test.total_fen),
        total_fen => test.total_fen,
        shares => test.shares,
        window_minutes => test.window_secs.div_ceil(60),
        ends_at => crate::engine::vars::date(test.ends_at).get_attr("time").unwrap_or_default(),
        mention_needed => mention_needed,
    }
}

/// `claim`: a share taken.
pub fn claim(amount_fen: u64, left: usize) -> Value {
    context! { amount => yuan_digits(amount_fen), left => left }
}

/// `results`: how the test went.
pub fn results(
    results: &Results,
    claims: &[ClaimRecord],
    test: &TestRecord,
    members: Option<u64>,
) -> Value {
    let started = test.posted_at.unwrap_or(test.started_at);
    let took = |secs: Option<u64>| secs.map_or_else(|| "—".to_owned(), duration);
    let lucky = claims
        .iter()
        // The first of equal amounts: WeChat shows one luckiest member.
        .fold(None::<&ClaimRecord>, |best, c| match best {
            Some(b) if b.amount_fen >= c.amount_fen => Some(b),
            _ => Some(c),
        })
        .map(|c| {
            context! {
                name => if c.name.is_empty() { c.user_id.as_str() } else { c.name.as_str() },
                amount => yuan_digits(c.amount_fen),
            }
        });
    let last = claims.iter().map(|c| c.at).max();
    context! {
        claims => results.claims,
        claimed => yuan_digits(results.claimed_fen),
        emptied => results.claims as u64 >= u64::from(results.shares),
        took => last.map_or_else(String::new, |at| duration((at - started).num_seconds().max(0) as u64)),
        lucky => lucky,
        verdict => results.verdict,
        verdict_text => verdict_text(results.verdict),
        first_claim => took(results.first_claim_secs),
        half_claimed => took(results.half_claimed_secs),
        all_claimed => took(results.all_claimed_secs),
        claimer_ratio => results
            .claimer_ratio
            .map_or_else(|| "未知".to_owned(), |r| format!("{:.0}%", r * 100.0)),
        members => members.map_or_else(|| Value::from("未知"), Value::from),
        silent_claimers => results.silent_claimers,
        posted => test.posted_at.is_some(),
        posted_late => test
            .posted_at
            .map(|p| (p - test.started_at).num_seconds())
            .filter(|&late| late >= 60)
            .map_or_else(String::new, |late| duration(late as u64)),
    }
}

/// The verdict in the operators' words.
pub fn verdict_text(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Alive => "活跃",
        Verdict::Sluggish => "不太活跃",
        Verdict::Dead => "已沉寂",
    }
}

/// `200` → `3 分 20 秒`; `3600` → `1 小时`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} 小时"));
    }
    if m > 0 {
        parts.push(format!("{m} 分"));
    }
    if s > 0 && h == 0 || parts.is_empty() {
        parts.push(format!("{s} 秒"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0 秒");
        assert_eq!(duration(45), "45 秒");
        assert_eq!(duration(200), "3 分 20 秒");
        assert_eq!(duration(3600), "1 小时");
        assert_eq!(duration(3725), "1 小时 2 分");
    }
}
