//! The `intent` check: weighted cues of an ad — and of an ordinary message, with negative
//! weights — added up with the learned score times its weight, and compared with a threshold.
//! A trade word alone does not convict; the evidence lists every cue that fired with its weight,
//! so an admin can see why a message was taken for an ad.

use super::Prepared;
use super::content::{self, WordList};
use super::learned::LazyScore;

/// One cue of an `intent` check: a name the evidence shows, its weight, and what finds it.
#[derive(Debug)]
pub struct Cue {
    pub name: String,
    pub weight: f32,
    pub finds: Finder,
}

/// What makes a cue fire.
#[derive(Debug)]
pub enum Finder {
    /// One of these words (or patterns).
    Words {
        words: Box<WordList>,
        /// Matched against the normalised text (punctuation kept: `？`) rather than the canonical.
        on_normalized: bool,
    },
    /// A phone number, WeChat id or QQ number written out (not "add me" bait: that is `Bait`).
    Contacts,
    /// "Add me" followed by a handle, in any disguise (`加威:lsbb123`, `V信同号`).
    Bait,
    /// A link whose host is not one of these domains (or under one).
    Links { allow: Vec<String> },
}

impl Finder {
    /// What this finder found in `message`, as written.
    fn find(&self, message: &Prepared) -> Option<String> {
        match self {
            Finder::Words {
                words,
                on_normalized,
            } => words.find_in(match on_normalized {
                true => message.normalized.as_str(),
                false => message.canonical.as_str(),
            }),
            Finder::Contacts => content::find_contact_number(message),
            Finder::Bait => content::find_bait(&message.normalized),
            Finder::Links { allow } => content::find_link(message, allow),
        }
    }
}

/// The `intent` score of `message` as evidence, when it reaches `threshold`: each cue that fired
/// with its weight and the word found, and the learned part.
pub(super) fn score(
    message: &Prepared,
    threshold: f32,
    cues: &[Cue],
    learned_weight: f32,
    learned: &LazyScore<'_>,
) -> Option<String> {
    let mut score = 0.0;
    let mut fired = Vec::new();
    for cue in cues {
        if let Some(found) = cue.finds.find(message) {
            score += cue.weight;
            fired.push(format!("{}({:+}): {found}", cue.name, cue.weight));
        }
    }
    if learned_weight != 0.0 {
        let learned = learned.get() * learned_weight;
        score += learned;
        fired.push(format!("learned({learned:+.1})"));
    }
    (score >= threshold).then(|| format!("intent {score:.1} ≥ {threshold}: {}", fired.join("; ")))
}
