//! The learned layer: a logistic regression over the characters and character pairs of a
//! message, trained when the process first needs it on the project's labelled corpus (the
//! `train` and `general` splits of `corpus/moderation/`, built into the binary) plus, where an
//! operator has judged findings, their own labels. It gives each message a score, the log-odds
//! that it is spam; a `learned` check fires above its threshold, an `intent` check adds the score
//! times its weight to its cues, and both name the score in their evidence. Where rules look for
//! the words spammers use, this weighs everything a message says — the shape of an ad (`低至`,
//! `名额有限`, `详询`) against the shape of a question (`吗`, `？`, `怎么`).
//!
//! Features are taken from the normalised text (full-width folded, lower case, simplified) with
//! spaces dropped, and Latin letters and digits are not read at all: what a handle, a number or
//! a link says is the contacts and links checks' business, and reading them made every short
//! message with a Latin word (`CPA报名`, `help`) look like a handle. Each feature present counts
//! once, scaled by the square root of how many the message has (plus a few, so that a message
//! of two characters is not judged as surely as a sentence), so a long post is not an ad for
//! being long. Training is plain stochastic gradient descent with L2 decay in a
//! fixed order (a seeded shuffle), so the same samples always give the same weights.

use std::sync::{Arc, LazyLock};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rustc_hash::FxHashMap;

/// The project's corpus the shipped classifier trains on (`label<TAB>text`): the accounting-group
/// split and the general one. The held-out split is never among them.
const SHIPPED_SAMPLES: [&str; 2] = [
    include_str!("../../../corpus/moderation/train.tsv"),
    include_str!("../../../corpus/moderation/general.tsv"),
];

/// Passes over the samples.
const EPOCHS: usize = 60;
/// Step size of each update.
const LEARNING_RATE: f32 = 0.2;
/// L2 decay: keeps a feature seen in a handful of samples from deciding alone.
const DECAY: f32 = 1e-3;
/// The shuffle's seed (any fixed number: it only has to be the same every time).
const SEED: u64 = 0x7275_6d70_6574;

/// The shipped corpus as labelled messages.
pub fn shipped_samples() -> Vec<super::eval::Labelled> {
    SHIPPED_SAMPLES
        .iter()
        .flat_map(|text| {
            super::eval::parse_labelled(text)
                .expect("the shipped corpus is `label<TAB>text` lines (a test checks it)")
        })
        .collect()
}

/// The classifier trained on the shipped corpus alone, once per process.
pub static SHIPPED: LazyLock<Arc<Classifier>> = LazyLock::new(|| {
    let samples = shipped_samples();
    Arc::new(Classifier::train(
        samples.iter().map(|m| (m.text.as_str(), m.spam)),
    ))
});

/// The classifier a set of rules uses, swappable while they are in force: the shipped one at
/// first, one trained with the operator's labels once the service has read them.
pub struct Model(std::sync::RwLock<Arc<Classifier>>);

impl Default for Model {
    fn default() -> Self {
        Self(std::sync::RwLock::new(Arc::clone(&SHIPPED)))
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

impl Model {
    /// The classifier in force.
    pub fn current(&self) -> Arc<Classifier> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `classifier` in force.
    pub fn set(&self, classifier: Arc<Classifier>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = classifier;
    }
}

/// A message's learned score, worked out the first time a check asks for it: the intent checks
/// and a `learned` check judging one message share it.
pub struct LazyScore<'a> {
    classifier: &'a Classifier,
    normalized: &'a str,
    score: std::cell::OnceCell<f32>,
}

impl<'a> LazyScore<'a> {
    pub fn new(classifier: &'a Classifier, normalized: &'a str) -> Self {
        Self {
            classifier,
            normalized,
            score: std::cell::OnceCell::new(),
        }
    }

    pub fn get(&self) -> f32 {
        *self
            .score
            .get_or_init(|| self.classifier.score_normalized(self.normalized))
    }
}

/// Per-feature weights learned from labelled messages.
pub struct Classifier {
    weights: FxHashMap<u64, f32>,
    bias: f32,
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

/// A feature's key: a character's code point, or an adjacent pair's two code points side by side
/// (21 bits each) with a marker bit — exact, so no two features ever share a weight.
fn key(previous: Option<char>, c: char) -> u64 {
    match previous {
        None => u64::from(c),
        Some(p) => 1 << 63 | u64::from(p) << 21 | u64::from(c),
    }
}

/// The distinct features of `text`: its characters and adjacent pairs, in the folded form
/// described above.
fn features(text: &str) -> Vec<u64> {
    features_of_normalized(&crate::engine::normalize::normalize(text))
}

/// [`features`] of a text already normalised (a [`Prepared`](super::Prepared) message's).
fn features_of_normalized(normalized: &str) -> Vec<u64> {
    // At most a character and a pair per character (a CJK character is three bytes).
    let mut out = Vec::with_capacity(normalized.len());
    let mut previous: Option<char> = None;
    for c in normalized.chars() {
        if c.is_whitespace() {
            // `代 开 发 票` reads as `代开发票`.
            continue;
        }
        if c.is_ascii_alphanumeric() {
            // Letters and digits are not read, and no pair spans them.
            previous = None;
            continue;
        }
        out.push(key(None, c));
        if previous.is_some() {
            out.push(key(previous, c));
        }
        previous = Some(c);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Features a message is taken to have beyond its own when its weights are scaled: a message of
/// a few characters says too little to be judged as surely as a sentence.
const SHORT_MESSAGE_PRIOR: f32 = 4.0;

/// How much each feature of a message with `count` features weighs.
fn scale(count: usize) -> f32 {
    1.0 / (count as f32 + SHORT_MESSAGE_PRIOR).sqrt()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z.clamp(-30.0, 30.0)).exp())
}

impl Classifier {
    /// Trains on `(text, is_spam)` pairs.
    pub fn train<'a>(samples: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        // Features numbered densely, so that training updates a vector, not a map.
        let mut numbers: FxHashMap<u64, usize> = FxHashMap::default();
        let rows: Vec<(Vec<usize>, f32)> = samples
            .into_iter()
            .map(|(text, spam)| {
                let row = features(text)
                    .into_iter()
                    .map(|f| {
                        let next = numbers.len();
                        *numbers.entry(f).or_insert(next)
                    })
                    .collect();
                (row, if spam { 1.0 } else { 0.0 })
            })
            .collect();
        // Each class weighs as much as the other however many samples it has: the corpus holds
        // about two ordinary messages for every ad, and without this the bias alone would make
        // every message the model knows little about (`網賭上分，百家樂`) lean ordinary.
        let spam = rows
            .iter()
            .filter(|(_, label)| *label == 1.0)
            .count()
            .max(1) as f32;
        let ordinary = (rows.len() as f32 - spam).max(1.0);
        let class_weight = |label: f32| match label == 1.0 {
            true => rows.len() as f32 / (2.0 * spam),
            false => rows.len() as f32 / (2.0 * ordinary),
        };
        let mut weights = vec![0.0f32; numbers.len()];
        let mut bias = 0.0f32;
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
        for epoch in 0..EPOCHS {
            // The step shrinks pass by pass, so the weights settle where the whole corpus puts
            // them rather than where the last few samples of a fixed-step pass pushed them.
            let rate = LEARNING_RATE * (1.0 - epoch as f32 / EPOCHS as f32);
            order.shuffle(&mut rng);
            for &i in &order {
                let (row, label) = &rows[i];
                let s = scale(row.len());
                let z = bias + s * row.iter().map(|&f| weights[f]).sum::<f32>();
                let gradient = (sigmoid(z) - label) * class_weight(*label);
                for &f in row {
                    let w = weights[f];
                    weights[f] = w - rate * (gradient * s + DECAY * w);
                }
                bias -= rate * gradient;
            }
        }
        Self {
            weights: numbers.into_iter().map(|(f, n)| (f, weights[n])).collect(),
            bias,
            samples: rows.len(),
        }
    }

    /// The log-odds that `text` is spam: above 0 it leans spam; the shipped checks act above a
    /// higher bar, where the corpus' ordinary messages almost never reach.
    pub fn score(&self, text: &str) -> f32 {
        self.score_features(&features(text))
    }

    /// [`Classifier::score`] of a text already normalised.
    pub fn score_normalized(&self, normalized: &str) -> f32 {
        self.score_features(&features_of_normalized(normalized))
    }

    fn score_features(&self, features: &[u64]) -> f32 {
        let sum: f32 = features.iter().filter_map(|f| self.weights.get(f)).sum();
        self.bias + scale(features.len()) * sum
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
        assert!(classifier.samples() >= 1000, "{classifier:?}");
        let ad = classifier.score("全套会计网课低至九块九，名额有限，私聊领取");
        let question = classifier.score("请问小规模纳税人季度申报几号截止？");
        assert!(ad > 0.0, "an ad scores {ad}");
        assert!(question < 0.0, "a question scores {question}");
    }

    /// A message is scored from its prepared form in the service and from its raw text in
    /// training: both must read the same features, so score the same.
    #[test]
    fn a_prepared_message_scores_as_its_raw_text() {
        let variants = crate::engine::moderation::text::Variants::default();
        let classifier = &*SHIPPED;
        for sample in shipped_samples().iter().step_by(7) {
            let prepared = crate::engine::moderation::Prepared::new(&sample.text, &variants);
            assert_eq!(
                classifier.score(&sample.text),
                LazyScore::new(classifier, &prepared.normalized).get(),
                "{}",
                sample.text
            );
        }
        assert_ne!(key(None, '代'), key(Some('代'), '开'));
        assert_ne!(key(Some('代'), '开'), key(Some('开'), '代'));
    }

    #[test]
    fn letters_and_digits_are_not_read() {
        assert_eq!(features("kj12345"), features("zz98760"));
        assert!(features("help").is_empty());
        assert_eq!(features("cpa报名"), features("报名"));
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
        let text = "[[check]]\nid = \"model\"\nkind = \"learned\"\nthreshold = 1.0\naction = \"delete\"\nreason = \"疑似广告\"\n";
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
