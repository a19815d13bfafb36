//! The learned layer: a naive Bayes classifier over the characters and character pairs of a
//! message, trained when the scripts load on the project's labelled corpus (the training split of
//! `corpus/moderation/`, built into the binary). It gives each message a score, the log-odds
//! that it is spam; a `learned` check fires above its threshold and names the score in its
//! evidence. Where rules look for the words spammers use, this weighs everything a message says —
//! the shape of an ad (`低至`, `名额有限`, `详询`) against the shape of a question (`吗`, `？`,
//! `怎么`).
//!
//! Features are taken from the normalised text (full-width folded, lower case, simplified) with
//! every digit read as `0` and every Latin letter as `a`, so that `kj12345` and `zz9876` are the
//! same shape, and spaces dropped. Each feature present counts once (Bernoulli), with add-one
//! smoothing; a feature never seen in training counts as its class sizes say.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

/// The training split of the project's corpus (`label<TAB>text`).
const SHIPPED_SAMPLES: &str = include_str!("../../../corpus/moderation/train.tsv");

/// The classifier trained on [`SHIPPED_SAMPLES`], once per process.
pub static SHIPPED: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    let samples = super::eval::parse_labelled(SHIPPED_SAMPLES)
        .expect("the shipped corpus is `label<TAB>text` lines (a test checks it)");
    Arc::new(Classifier::train(
        samples.iter().map(|m| (m.text.as_str(), m.spam)),
    ))
});

/// Per-feature weights learned from labelled messages.
pub struct Classifier {
    /// ln(P(feature | spam) / P(feature | ordinary)) for every feature seen in training.
    weights: HashMap<u64, f32>,
    /// The same for a feature never seen.
    unseen: f32,
    /// ln(spam / ordinary) of the training set.
    prior: f32,
    samples: usize,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("features", &self.weights.len())
            .field("samples", &self.samples)
            .finish()
    }
}

/// The distinct features of `text` (hashed): its characters and adjacent pairs, in the folded
/// form described above.
fn features(text: &str) -> Vec<u64> {
    let folded: Vec<char> = crate::engine::normalize::normalize(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '0'..='9' => '0',
            'a'..='z' => 'a',
            other => other,
        })
        .collect();
    let hash = |parts: &[char]| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        parts.hash(&mut hasher);
        hasher.finish()
    };
    let mut out: Vec<u64> = folded
        .iter()
        .map(|c| hash(std::slice::from_ref(c)))
        .chain(folded.windows(2).map(hash))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl Classifier {
    /// Trains on `(text, is_spam)` pairs.
    pub fn train<'a>(samples: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let mut spam: HashMap<u64, u32> = HashMap::new();
        let mut ordinary: HashMap<u64, u32> = HashMap::new();
        let (mut spam_count, mut ordinary_count, mut samples_seen) = (0u32, 0u32, 0usize);
        for (text, is_spam) in samples {
            samples_seen += 1;
            let (counts, total) = match is_spam {
                true => (&mut spam, &mut spam_count),
                false => (&mut ordinary, &mut ordinary_count),
            };
            *total += 1;
            for feature in features(text) {
                *counts.entry(feature).or_default() += 1;
            }
        }
        let (s, o) = (f64::from(spam_count) + 2.0, f64::from(ordinary_count) + 2.0);
        let weight = |in_spam: u32, in_ordinary: u32| {
            (((f64::from(in_spam) + 1.0) / s) / ((f64::from(in_ordinary) + 1.0) / o)).ln() as f32
        };
        let mut weights = HashMap::with_capacity(spam.len() + ordinary.len());
        for feature in spam.keys().chain(ordinary.keys()) {
            weights.entry(*feature).or_insert_with(|| {
                weight(
                    spam.get(feature).copied().unwrap_or(0),
                    ordinary.get(feature).copied().unwrap_or(0),
                )
            });
        }
        Self {
            weights,
            unseen: weight(0, 0),
            prior: ((f64::from(spam_count.max(1))) / f64::from(ordinary_count.max(1))).ln() as f32,
            samples: samples_seen,
        }
    }

    /// The log-odds that `text` is spam: above 0 it leans spam; the shipped check acts above a
    /// higher threshold, where ordinary messages almost never reach.
    pub fn score(&self, text: &str) -> f32 {
        features(text)
            .iter()
            .map(|f| self.weights.get(f).copied().unwrap_or(self.unseen))
            .sum::<f32>()
            + self.prior
    }

    /// Messages it was trained on.
    pub fn samples(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_corpus_trains_a_classifier_that_tells_an_ad_from_a_question() {
        let classifier = &*SHIPPED;
        assert!(classifier.samples() >= 500, "{classifier:?}");
        let ad = classifier.score("全套会计网课低至九块九，名额有限，私聊领取");
        let question = classifier.score("请问小规模纳税人季度申报几号截止？");
        assert!(ad > 0.0, "an ad scores {ad}");
        assert!(question < 0.0, "a question scores {question}");
    }

    #[test]
    fn digits_and_letters_count_by_shape() {
        assert_eq!(features("kj12345"), features("zz98760"));
        assert_ne!(features("加我"), features("问我"));
        let trained = Classifier::train([("加v：ab123", true), ("几号截止？", false)]);
        assert!(trained.score("加v：xy999") > trained.score("几号截止？"));
    }
}

#[cfg(test)]
mod check_tests {
    use crate::engine::moderation::eval::{Labelled, evaluate};

    /// A `learned` check in a moderation file: an ad past its threshold is deleted, with the
    /// score in the evidence; a question is not.
    #[test]
    fn a_learned_check_acts_above_its_threshold_and_names_the_score() {
        let text = "[[check]]\nid = \"model\"\nkind = \"learned\"\nthreshold = 6.0\naction = \"delete\"\nreason = \"疑似广告\"\n";
        let rules =
            crate::scripts::moderation::parse_file(text, std::path::Path::new("m.toml")).unwrap();
        let messages = [
            Labelled {
                text: "【会计网课】全套课程低至9.9元，名额有限，详询客服".into(),
                spam: true,
            },
            Labelled {
                text: "请问小规模纳税人季度申报几号截止？".into(),
                spam: false,
            },
        ];
        let score = evaluate(&rules, &messages, chrono::Utc::now());
        assert_eq!((score.caught, score.flagged), (1, 0), "{score:?}");
        let mut lenient = rules;
        if let crate::engine::moderation::CheckKind::Learned { threshold, .. } =
            &mut lenient.checks[0].kind
        {
            *threshold = -40.0;
        }
        let score = evaluate(&lenient, &messages, chrono::Utc::now());
        assert_eq!(score.flagged, 1);
        assert!(
            score.false_positives[0]
                .1
                .starts_with("model: learned score"),
            "{score:?}"
        );
    }
}
