//! Measuring moderation on labelled messages: each message judged as a long-standing member's
//! who is not trusted yet (a month in the group, past probation, ten clean messages — the shipped
//! `trust_after` is 20 —, no warnings, a quiet group: only what the text says counts), and
//! counted as caught when moderation acts on it (deletes, warns or removes). Precision, recall and the false-positive rate come out, with the misses and the
//! false positives (and what fired on them) to look at. `trumpet moderation-eval FILE` runs it
//! on an operator's own file; the corpus tests run it on the project's.

use chrono::{DateTime, Utc};

use super::{Activity, Content, ModerationRules, Prepared, Severity, Standing, judge};
use crate::domain::{ChatId, GroupSettings, Role};
use crate::engine::scope::Place;

/// A message and whether it is spam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub text: String,
    pub spam: bool,
}

/// How moderation did on a set of labelled messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    pub spam: usize,
    /// Spam that moderation acted on.
    pub caught: usize,
    pub ordinary: usize,
    /// Ordinary messages that moderation acted on.
    pub flagged: usize,
    /// Spam let through.
    pub missed: Vec<String>,
    /// Ordinary messages acted on, with the evidence of what fired.
    pub false_positives: Vec<(String, String)>,
}

impl Score {
    /// Caught ÷ spam (1 when there is no spam).
    pub fn recall(&self) -> f64 {
        ratio(self.caught, self.spam)
    }

    /// Caught ÷ everything acted on (1 when nothing was).
    pub fn precision(&self) -> f64 {
        ratio(self.caught, self.caught + self.flagged)
    }

    /// Flagged ÷ ordinary messages (0 when there are none).
    pub fn false_positive_rate(&self) -> f64 {
        1.0 - ratio(self.ordinary - self.flagged, self.ordinary)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// Whose messages are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sender {
    /// A member of a month, past probation, ten clean messages, not trusted yet.
    #[default]
    LongStanding,
    /// A member who joined a moment ago: on probation, so `members = "probation"` checks apply.
    Newcomer,
}

/// Judges every message as a long-standing member's in a quiet group at `now`.
pub fn evaluate(rules: &ModerationRules, messages: &[Labelled], now: DateTime<Utc>) -> Score {
    evaluate_as(rules, messages, Sender::LongStanding, now)
}

/// Judges every message as `sender`'s in a quiet group at `now`.
pub fn evaluate_as(
    rules: &ModerationRules,
    messages: &[Labelled],
    sender: Sender,
    now: DateTime<Utc>,
) -> Score {
    let mut score = Score::default();
    for message in messages {
        match (message.spam, acts_on_as(rules, &message.text, sender, now)) {
            (true, Some(_)) => score.caught += 1,
            (true, None) => score.missed.push(message.text.clone()),
            (false, Some(evidence)) => {
                score.false_positives.push((message.text.clone(), evidence));
            }
            (false, None) => {}
        }
        if message.spam {
            score.spam += 1;
        } else {
            score.ordinary += 1;
        }
    }
    score.flagged = score.false_positives.len();
    score
}

/// Whether `rules` act on `text` (delete, warn or remove) from a long-standing member who is not
/// trusted yet, in a quiet group at `now`: the evidence of every check that fired when they do.
pub fn acts_on(rules: &ModerationRules, text: &str, now: DateTime<Utc>) -> Option<String> {
    acts_on_as(rules, text, Sender::LongStanding, now)
}

/// [`acts_on`] for `sender`'s message.
pub fn acts_on_as(
    rules: &ModerationRules,
    text: &str,
    sender: Sender,
    now: DateTime<Utc>,
) -> Option<String> {
    let settings = GroupSettings::default();
    let chat = ChatId::new("evaluation");
    let place = Place {
        chat: Some(&chat),
        settings: &settings,
    };
    let standing = Standing {
        role: Role::Member,
        approved: false,
        messages: 10,
        clean: 10,
        first_seen: Some(now - chrono::Duration::days(30)),
        warnings: &[],
    };
    let standing = match sender {
        Sender::LongStanding => standing,
        Sender::Newcomer => Standing {
            messages: 0,
            clean: 0,
            first_seen: Some(now),
            ..standing
        },
    };
    let prepared = Prepared::new(text, &rules.variants);
    let content = Content {
        prepared: &prepared,
        parts: &[],
        qr_codes: &[],
    };
    let verdict = judge(
        rules,
        place,
        &content,
        &standing,
        &Activity::default(),
        "member",
        now,
    );
    verdict
        .outcome()
        .is_some_and(|s| s >= Severity::Delete)
        .then(|| {
            verdict
                .findings
                .iter()
                .map(|f| format!("{}: {}", f.check, f.evidence))
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// Cross-validation: `messages` split into `folds` (every `folds`-th message in one), each fold
/// judged by `rules` with a learned layer trained on the other folds only — how the rules do on
/// messages their classifier never saw. The rules' classifier is put back afterwards.
pub fn cross_validate(
    rules: &ModerationRules,
    messages: &[Labelled],
    folds: usize,
    sender: Sender,
    now: DateTime<Utc>,
) -> Score {
    let folds = folds.max(2);
    let before = rules.learned.current();
    let mut total = Score::default();
    for fold in 0..folds {
        let (held, trained): (Vec<_>, Vec<_>) = messages
            .iter()
            .enumerate()
            .partition(|(i, _)| i % folds == fold);
        let classifier = super::learned::Classifier::train(
            trained.iter().map(|(_, m)| (m.text.as_str(), m.spam)),
        );
        rules.learned.set(std::sync::Arc::new(classifier));
        let held: Vec<Labelled> = held.into_iter().map(|(_, m)| m.clone()).collect();
        total.add(evaluate_as(rules, &held, sender, now));
    }
    rules.learned.set(before);
    total
}

impl Score {
    fn add(&mut self, other: Score) {
        self.spam += other.spam;
        self.caught += other.caught;
        self.ordinary += other.ordinary;
        self.flagged += other.flagged;
        self.missed.extend(other.missed);
        self.false_positives.extend(other.false_positives);
    }
}

/// Labelled messages from a file: a TOML corpus (`spam = [...]`, `legit = [...]`, as in
/// `tests/data/`) when the text parses as one, else lines of `label<TAB>text` with the label
/// `spam`/`1` or `ham`/`legit`/`0` (blank lines and lines starting with `#` skipped). The error
/// names the line.
pub fn parse_labelled(text: &str) -> Result<Vec<Labelled>, String> {
    #[derive(serde::Deserialize)]
    struct Corpus {
        spam: Vec<String>,
        legit: Vec<String>,
    }
    if let Ok(corpus) = toml::from_str::<Corpus>(text) {
        let spam = corpus
            .spam
            .into_iter()
            .map(|text| Labelled { text, spam: true });
        let legit = corpus
            .legit
            .into_iter()
            .map(|text| Labelled { text, spam: false });
        return Ok(spam.chain(legit).collect());
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((label, message)) = line.split_once('\t') else {
            return Err(format!(
                "line {}: expected `label<TAB>text` (or a TOML corpus with spam and legit)",
                n + 1
            ));
        };
        let spam = match label.trim() {
            "spam" | "1" => true,
            "ham" | "legit" | "0" => false,
            other => {
                return Err(format!(
                    "line {}: the label {other:?} must be spam or ham (1 or 0)",
                    n + 1
                ));
            }
        };
        out.push(Labelled {
            text: message.to_owned(),
            spam,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_either_shape_is_read_and_a_bad_line_is_named() {
        let tsv =
            parse_labelled("spam\t加我薇信 kj12345\n# a note\n\nham\t今天几号报税？\n").unwrap();
        assert_eq!(tsv.len(), 2);
        assert!(tsv[0].spam && !tsv[1].spam);
        let toml = parse_labelled("spam = [\"a\"]\nlegit = [\"b\", \"c\"]\n").unwrap();
        assert_eq!(toml.iter().filter(|m| m.spam).count(), 1);
        assert_eq!(
            parse_labelled("spam\tx\nmaybe\ty\n").unwrap_err(),
            "line 2: the label \"maybe\" must be spam or ham (1 or 0)"
        );
        assert!(
            parse_labelled("no tab here")
                .unwrap_err()
                .starts_with("line 1")
        );
    }

    /// Each fold is judged by a classifier that never saw it: a message the whole set would
    /// teach is missed when it is alone of its kind.
    #[test]
    fn cross_validation_judges_each_fold_with_a_classifier_that_did_not_see_it() {
        let rules = crate::scripts::moderation::parse_file(
            "[[check]]\nid = \"model\"\nkind = \"learned\"\nthreshold = 1.0\naction = \"delete\"\nreason = \"x\"\n",
            std::path::Path::new("m.toml"),
        )
        .unwrap();
        let mut messages = Vec::new();
        for i in 0..10 {
            messages.push(Labelled {
                text: format!("低价出售第{i}批货，速来"),
                spam: true,
            });
            messages.push(Labelled {
                text: format!("第{i}章的习题怎么做？"),
                spam: false,
            });
        }
        let shipped = rules.learned.current();
        let score = cross_validate(&rules, &messages, 5, Sender::LongStanding, Utc::now());
        assert_eq!((score.spam, score.ordinary), (10, 10));
        assert_eq!((score.caught, score.flagged), (10, 0), "{score:?}");
        assert!(std::sync::Arc::ptr_eq(&shipped, &rules.learned.current()));
        // A message unlike every other in the set: its fold's classifier has nothing to go on,
        // where one trained on the whole set has learned it.
        messages.push(Labelled {
            text: "🎁🎁🎁".into(),
            spam: true,
        });
        let score = cross_validate(&rules, &messages, 5, Sender::Newcomer, Utc::now());
        assert_eq!(score.missed, ["🎁🎁🎁"]);
        rules.learned.set(std::sync::Arc::new(
            super::super::learned::Classifier::train(
                messages.iter().map(|m| (m.text.as_str(), m.spam)),
            ),
        ));
        assert_eq!(evaluate(&rules, &messages, Utc::now()).caught, 11);
    }

    #[test]
    fn the_score_counts_what_moderation_acted_on() {
        let rules = crate::engine::Scripts::embedded().unwrap().moderation;
        let messages = [
            Labelled {
                text: "加我微信领取免费会计资料".into(),
                spam: true,
            },
            Labelled {
                text: "今天几号截止申报？".into(),
                spam: false,
            },
        ];
        let score = evaluate(&rules, &messages, Utc::now());
        assert_eq!(
            (score.spam, score.caught, score.ordinary, score.flagged),
            (1, 1, 1, 0)
        );
        assert_eq!((score.recall(), score.precision()), (1.0, 1.0));
        assert_eq!(score.false_positive_rate(), 0.0);
    }
}
