//! Red-envelope tests, the pure part: splitting an envelope into the lucky shares members claim.
//! WeCom's APIs offer no way to post a group red packet, so Trumpet keeps the ledger and
//! the split itself: amounts feel like WeChat's lucky envelopes — random, each at least 0.01
//! yuan, summing exactly to the total, in integer fen — and are reproducible from the seed stored
//! with the test, so that the ledger can always be recomputed and checked. [`results`] measures a
//! test (time to the first claim, to half and all the shares, claimers per member) and gives the
//! verdict: alive, sluggish or dead.

pub mod rules;

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use crate::domain::red_envelope::{Results, Verdict};

/// The smallest share: 0.01 yuan.
pub const MIN_SHARE_FEN: u64 = 1;
/// The most shares one envelope may have.
pub const MAX_SHARES: u32 = 1000;
/// The most an envelope may hold: 20,000.00 yuan.
pub const MAX_TOTAL_FEN: u64 = 2_000_000;

/// Why an envelope cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("an envelope needs at least one share")]
    NoShares,
    #[error("an envelope has at most {MAX_SHARES} shares, not {0}")]
    TooManyShares(u32),
    #[error("{total_fen} fen cannot make {shares} shares of at least 0.01 yuan each")]
    TooLittle { total_fen: u64, shares: u32 },
    #[error("an envelope holds at most {MAX_TOTAL_FEN} fen, not {0}")]
    TooMuch(u64),
}

/// Splits `total_fen` into `shares` amounts, in the order they will be claimed, from `seed`.
///
/// Each share but the last is drawn uniformly between 0.01 yuan and twice the mean of what is
/// left (the way WeChat's lucky envelopes are commonly described), never so much that a later
/// share would get less than 0.01 yuan; the last share takes the rest. The generator is ChaCha8,
/// whose output for a seed is fixed by its specification, so a stored seed gives the same split
/// on any build.
pub fn split(total_fen: u64, shares: u32, seed: u64) -> Result<Vec<u64>, SplitError> {
    check(total_fen, shares)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut left = total_fen;
    let mut out = Vec::with_capacity(shares as usize);
    for remaining in (2..=u64::from(shares)).rev() {
        // `left >= remaining` holds here: every later share can still get its 0.01 yuan.
        let ceiling = (left * 2 / remaining).min(left - (remaining - 1) * MIN_SHARE_FEN);
        let share = rng.random_range(MIN_SHARE_FEN..=ceiling.max(MIN_SHARE_FEN));
        out.push(share);
        left -= share;
    }
    out.push(left);
    Ok(out)
}

/// Whether an envelope of `total_fen` in `shares` shares can be split (every share at least
/// 0.01 yuan, within the limits).
pub fn check(total_fen: u64, shares: u32) -> Result<(), SplitError> {
    if shares == 0 {
        return Err(SplitError::NoShares);
    }
    if shares > MAX_SHARES {
        return Err(SplitError::TooManyShares(shares));
    }
    if total_fen > MAX_TOTAL_FEN {
        return Err(SplitError::TooMuch(total_fen));
    }
    if total_fen < u64::from(shares) * MIN_SHARE_FEN {
        return Err(SplitError::TooLittle { total_fen, shares });
    }
    Ok(())
}

/// The same refusal in the members' words (for the chat).
pub fn chinese_reason(e: &SplitError) -> String {
    match e {
        SplitError::NoShares => "至少要有 1 份".into(),
        SplitError::TooManyShares(n) => format!("最多 {MAX_SHARES} 份，这里是 {n} 份"),
        SplitError::TooMuch(fen) => {
            format!("总额最多 {}，这里是 {}", yuan(MAX_TOTAL_FEN), yuan(*fen))
        }
        SplitError::TooLittle { total_fen, shares } => {
            format!("{} 分不够分成 {shares} 份（每份至少 0.01 元）", total_fen)
        }
    }
}

/// `fen` as yuan with two decimals: `2000` → `20.00 元`.
pub fn yuan(fen: u64) -> String {
    format!("{} 元", yuan_digits(fen))
}

/// `fen` as a number of yuan with two decimals: `2000` → `20.00`.
pub fn yuan_digits(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// Reads a test's parameters from a command's words, in any order: an amount in yuan (`20元`,
/// `20块`, `0.5元`) or fen (`2000分`), shares (`20份`, `20个`), a window (`30分钟`, `2小时`,
/// `90秒`); bare numbers are taken as yuan, shares and minutes, in that order, for the values
/// not given with a unit. The error is for the member, in Chinese.
pub fn parse_args(args: &str) -> Result<crate::domain::EnvelopeParams, String> {
    let mut params = crate::domain::EnvelopeParams::default();
    let mut bare = Vec::new();
    for word in args.split_whitespace() {
        let split = word
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(word.len());
        let (number, unit) = word.split_at(split);
        let bad = || format!("看不懂「{word}」，可以这样写：红包测试 20元 20份 2小时");
        if number.is_empty() {
            return Err(bad());
        }
        let whole = || number.parse::<u64>().map_err(|_| bad());
        match unit.to_lowercase().as_str() {
            "" => bare.push((number, word)),
            "元" | "块" | "块钱" | "yuan" => {
                params.total_fen = Some(fen_of_yuan(number).ok_or_else(bad)?)
            }
            "分" | "fen" => params.total_fen = Some(whole()?),
            "份" | "个" => params.shares = Some(u32::try_from(whole()?).map_err(|_| bad())?),
            "秒" | "s" => params.window_secs = Some(whole()?),
            "分钟" | "min" | "m" => params.window_secs = Some(whole()?.saturating_mul(60)),
            "小时" | "h" => params.window_secs = Some(hours_secs(number).ok_or_else(bad)?),
            _ => return Err(bad()),
        }
    }
    for (number, word) in bare {
        let bad = || format!("看不懂「{word}」，可以这样写：红包测试 20元 20份 2小时");
        if params.total_fen.is_none() {
            params.total_fen = Some(fen_of_yuan(number).ok_or_else(bad)?);
        } else if params.shares.is_none() {
            params.shares = Some(number.parse().map_err(|_| bad())?);
        } else if params.window_secs.is_none() {
            let minutes: u64 = number.parse().map_err(|_| bad())?;
            params.window_secs = Some(minutes.saturating_mul(60));
        } else {
            return Err(format!("「{word}」多余了：金额、份数、时间各写一个就好"));
        }
    }
    Ok(params)
}

/// `12.5` yuan → 1250 fen (at most two decimals).
fn fen_of_yuan(number: &str) -> Option<u64> {
    let (whole, cents) = number.split_once('.').unwrap_or((number, ""));
    if cents.len() > 2 || (whole.is_empty() && cents.is_empty()) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let cents: u64 = if cents.is_empty() {
        0
    } else {
        format!("{cents:0<2}").parse().ok()?
    };
    whole.checked_mul(100)?.checked_add(cents)
}

/// `1.5` hours → 5400 seconds (to the minute).
fn hours_secs(number: &str) -> Option<u64> {
    let hours: f64 = number.parse().ok()?;
    (0.0..1e6)
        .contains(&hours)
        .then(|| (hours * 60.0).round() as u64 * 60)
}

/// The phrase members send to claim a share: one of `words` and three digits (`财税好运 527`),
/// chosen from `seed` so that a test's phrase is stored implicitly with its seed. Distinct
/// enough that ordinary talk never claims by accident; short enough to type on a phone.
pub fn claim_phrase(words: &[String], seed: u64) -> String {
    // A different stream from the split's, so that the phrase says nothing about the amounts.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_C1A1_u64);
    let word = words
        .get(rng.random_range(0..words.len().max(1)))
        .map_or("红包", String::as_str);
    format!("{word} {:03}", rng.random_range(0..1000u32))
}

/// One share claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub user_id: String,
    pub amount_fen: u64,
    pub at: DateTime<Utc>,
}

/// What a claim gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The next share: its index in the split, its amount, and how many shares are left.
    Claimed {
        index: usize,
        amount_fen: u64,
        left: usize,
    },
    /// One share per member: they already have this one.
    AlreadyClaimed { amount_fen: u64 },
    /// Every share is taken.
    Empty,
    /// The window has closed (or the test has not started).
    Closed,
}

/// What `user_id` claiming at `at` gets from an envelope split into `split`, open from
/// `started` to `ends_at`, given the `claims` made so far (first come, first served).
pub fn claim(
    split: &[u64],
    claims: &[Claim],
    user_id: &str,
    at: DateTime<Utc>,
    started: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> ClaimOutcome {
    if let Some(earlier) = claims.iter().find(|c| c.user_id == user_id) {
        return ClaimOutcome::AlreadyClaimed {
            amount_fen: earlier.amount_fen,
        };
    }
    if at < started || at > ends_at {
        return ClaimOutcome::Closed;
    }
    match split.get(claims.len()) {
        Some(&amount_fen) => ClaimOutcome::Claimed {
            index: claims.len(),
            amount_fen,
            left: split.len() - claims.len() - 1,
        },
        None => ClaimOutcome::Empty,
    }
}

/// The thresholds of the verdict (bot-scripts; the defaults are the operators' rule of thumb:
/// an envelope not half grabbed within two hours means the group is dead).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerdictRules {
    /// Dead: fewer than this share of the envelope's shares claimed within the window.
    pub dead_below: f64,
    /// Sluggish (when not dead): the first claim came later than this…
    pub sluggish_first_claim: Duration,
    /// …or half the shares took longer than this (or were never claimed).
    pub sluggish_half: Duration,
}

impl Default for VerdictRules {
    fn default() -> Self {
        Self {
            dead_below: 0.5,
            sluggish_first_claim: Duration::from_secs(10 * 60),
            sluggish_half: Duration::from_secs(60 * 60),
        }
    }
}

/// Measures a test posted at `started` with `shares` shares and a `window`: `claims` in the
/// order they came, `members` in the group if known, and how many claimers never otherwise
/// speak there.
pub fn results(
    claims: &[Claim],
    shares: u32,
    started: DateTime<Utc>,
    window: Duration,
    members: Option<u64>,
    silent_claimers: usize,
    rules: &VerdictRules,
) -> Results {
    let end = started + chrono::Duration::from_std(window).unwrap_or_default();
    let mut times: Vec<u64> = claims
        .iter()
        .filter(|c| c.at >= started && c.at <= end)
        .map(|c| (c.at - started).num_seconds().max(0) as u64)
        .collect();
    times.sort_unstable();
    let counted = times.len();
    // Saturating: amounts reported by a platform are bounded before they get here, and a sum
    // must never wrap to a small number in any case.
    let claimed_fen = claims
        .iter()
        .filter(|c| c.at >= started && c.at <= end)
        .fold(0u64, |sum, c| sum.saturating_add(c.amount_fen));
    let nth = |n: usize| (n >= 1 && counted >= n).then(|| times[n - 1]);
    let first = nth(1);
    let half = nth((shares as usize).div_ceil(2));
    let all = nth(shares as usize);
    let verdict = if (counted as f64) < rules.dead_below * f64::from(shares) {
        Verdict::Dead
    } else if first.is_none_or(|s| s > rules.sluggish_first_claim.as_secs())
        || half.is_none_or(|s| s > rules.sluggish_half.as_secs())
    {
        Verdict::Sluggish
    } else {
        Verdict::Alive
    };
    Results {
        shares,
        claims: counted,
        claimed_fen,
        first_claim_secs: first,
        half_claimed_secs: half,
        all_claimed_secs: all,
        claimer_ratio: members
            .filter(|&m| m > 0)
            .map(|m| counted as f64 / m as f64),
        silent_claimers,
        verdict,
    }
}

#[cfg(test)]
mod tests;
