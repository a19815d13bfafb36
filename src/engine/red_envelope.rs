//! Red-envelope tests, the pure part: splitting an envelope into the lucky shares members claim.
//! WeCom's APIs cannot post a group red packet (PROTOCOL.md §7), so Trumpet keeps the ledger and
//! the split itself: amounts feel like WeChat's lucky envelopes — random, each at least 0.01
//! yuan, summing exactly to the total, in integer fen — and are reproducible from the seed stored
//! with the test, so that the ledger can always be recomputed and checked.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn impossible_envelopes_are_refused() {
        assert_eq!(split(100, 0, 1), Err(SplitError::NoShares));
        assert_eq!(
            split(5, 6, 1),
            Err(SplitError::TooLittle {
                total_fen: 5,
                shares: 6
            })
        );
        assert_eq!(
            split(100_000, 1001, 1),
            Err(SplitError::TooManyShares(1001))
        );
        assert_eq!(
            split(MAX_TOTAL_FEN + 1, 10, 1),
            Err(SplitError::TooMuch(MAX_TOTAL_FEN + 1))
        );
        assert!(
            split(5, 6, 1)
                .unwrap_err()
                .to_string()
                .contains("0.01 yuan")
        );
    }

    #[test]
    fn edge_cases_split_exactly() {
        assert_eq!(split(1, 1, 7).unwrap(), vec![1]);
        assert_eq!(
            split(20, 20, 7).unwrap(),
            vec![1; 20],
            "one fen each, no choice"
        );
        assert_eq!(split(2000, 1, 7).unwrap(), vec![2000]);
        assert_eq!(
            split(MAX_TOTAL_FEN, MAX_SHARES, 7)
                .unwrap()
                .iter()
                .sum::<u64>(),
            MAX_TOTAL_FEN
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_split_on_every_build() {
        // Fixed by ChaCha8's specification and rand's uniform sampling (which rand may change
        // in a release that says so): a change here means stored ledgers would no longer
        // recompute, and must not slip in with a dependency update.
        assert_eq!(split(2000, 5, 42).unwrap(), split(2000, 5, 42).unwrap());
        assert_ne!(split(2000, 20, 42).unwrap(), split(2000, 20, 43).unwrap());
        let known = split(2000, 5, 42).unwrap();
        assert_eq!(known.iter().sum::<u64>(), 2000);
        assert_eq!(known, EXPECTED_2000_5_42.to_vec());
    }

    /// `split(2000, 5, 42)`, recorded when the algorithm was written.
    const EXPECTED_2000_5_42: [u64; 5] = [546, 691, 218, 342, 203];

    #[test]
    fn shares_feel_like_lucky_envelopes() {
        // Over many envelopes of 20.00 yuan in 20 shares: the first share averages the mean
        // (1.00 yuan), shares vary, and no drawn share exceeds twice the mean of what was left.
        let (mut first_total, mut spread) = (0u64, 0u64);
        for seed in 0..2000 {
            let shares = split(2000, 20, seed).unwrap();
            first_total += shares[0];
            spread += shares.iter().max().unwrap() - shares.iter().min().unwrap();
            let mut left = 2000;
            for (i, &s) in shares[..19].iter().enumerate() {
                assert!(s <= left * 2 / (20 - i as u64), "seed {seed}: {shares:?}");
                left -= s;
            }
        }
        let first_mean = first_total as f64 / 2000.0;
        assert!(
            (first_mean - 100.0).abs() < 5.0,
            "first share averages {first_mean} fen"
        );
        assert!(
            spread / 2000 > 100,
            "shares differ: mean spread {} fen",
            spread / 2000
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_split_sums_exactly_and_gives_everyone_a_fen(
            total in 1u64..=MAX_TOTAL_FEN,
            shares in 1u32..=MAX_SHARES,
            seed in any::<u64>(),
        ) {
            prop_assume!(total >= u64::from(shares));
            let split = split(total, shares, seed).unwrap();
            prop_assert_eq!(split.len(), shares as usize);
            prop_assert_eq!(split.iter().sum::<u64>(), total);
            prop_assert!(split.iter().all(|&s| s >= MIN_SHARE_FEN));
        }
    }
}
