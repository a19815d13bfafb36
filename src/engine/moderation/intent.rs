//! The `intent` check: weighted cues of an ad — and of an ordinary message, with negative
//! weights — added up with the learned score times its weight, and compared with a threshold.
//! A trade word alone does not convict; the evidence lists every cue that fired with its weight,
//! so an admin can see why a message was taken for an ad.

use std::collections::HashMap;

use daachorse::{CharwiseDoubleArrayAhoCorasick, CharwiseDoubleArrayAhoCorasickBuilder, MatchKind};

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
    /// A plain word list's words with their canonical forms, and whether they are read on the
    /// normalised form: these go into the check's automaton ([`Cues`]).
    fn substrings(&self) -> Option<(impl Iterator<Item = (&str, &str)>, bool)> {
        match self {
            Finder::Words {
                words,
                on_normalized,
            } => Some((words.substrings()?, *on_normalized)),
            _ => None,
        }
    }

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

/// The cues of an intent check. Every plain word of every cue goes into one automaton for the
/// form it is read in, so a message is read once for all of them rather than once per cue; the
/// cues that find contacts, bait, links or patterns look for themselves.
pub struct Cues {
    cues: Vec<Cue>,
    /// On the canonical and on the normalised form: each pattern's number in `patterns`.
    canonical: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    normalized: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    /// Each pattern's cue and the word as written (what the evidence shows).
    patterns: Vec<(usize, String)>,
}

impl std::fmt::Debug for Cues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cues")
            .field("cues", &self.cues)
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

impl Cues {
    /// Gathers `cues`; a word that two cues read the same way (`vx` in one, `微信` in another,
    /// once variants are replaced) is refused, as it would count twice.
    pub fn new(cues: Vec<Cue>) -> Result<Self, String> {
        let mut patterns = Vec::new();
        let mut forms: [Vec<(String, u32)>; 2] = [Vec::new(), Vec::new()];
        let mut seen: [HashMap<String, usize>; 2] = [HashMap::new(), HashMap::new()];
        for (index, cue) in cues.iter().enumerate() {
            let Some((substrings, on_normalized)) = cue.finds.substrings() else {
                continue;
            };
            let side = usize::from(on_normalized);
            for (word, form) in substrings {
                if let Some(&first) = seen[side].get(form) {
                    let (other, written): &(usize, String) = &patterns[first];
                    return Err(format!(
                        "{word:?} in cue {:?} reads the same as {written:?} in cue {:?}: it would count twice",
                        cue.name, cues[*other].name
                    ));
                }
                seen[side].insert(form.to_owned(), patterns.len());
                forms[side].push((form.to_owned(), patterns.len() as u32));
                patterns.push((index, word.to_owned()));
            }
        }
        let build = |forms: Vec<(String, u32)>| {
            (!forms.is_empty())
                .then(|| {
                    CharwiseDoubleArrayAhoCorasickBuilder::new()
                        .match_kind(MatchKind::Standard)
                        .build_with_values(forms)
                        .map_err(|e| format!("cue words: {e}"))
                })
                .transpose()
        };
        let [canonical, normalized] = forms;
        Ok(Self {
            canonical: build(canonical)?,
            normalized: build(normalized)?,
            cues,
            patterns,
        })
    }

    /// For each cue, what it found in `message` (the leftmost word, the longest there).
    fn find(&self, message: &Prepared) -> Vec<Option<String>> {
        // (start, length, pattern) of each automaton cue's best match so far.
        let mut best: Vec<Option<(usize, usize, usize)>> = vec![None; self.cues.len()];
        for (automaton, text) in [
            (&self.canonical, message.canonical.as_str()),
            (&self.normalized, message.normalized.as_str()),
        ] {
            let Some(automaton) = automaton else { continue };
            for found in automaton.find_overlapping_iter(text) {
                let pattern = found.value() as usize;
                let cue = self.patterns[pattern].0;
                let candidate = (found.start(), found.end() - found.start(), pattern);
                let better = best[cue].is_none_or(|(start, length, _)| {
                    candidate.0 < start || (candidate.0 == start && candidate.1 > length)
                });
                if better {
                    best[cue] = Some(candidate);
                }
            }
        }
        self.cues
            .iter()
            .zip(best)
            .map(|(cue, best)| match cue.finds.substrings().is_some() {
                true => best.map(|(_, _, pattern)| self.patterns[pattern].1.clone()),
                false => cue.finds.find(message),
            })
            .collect()
    }
}

/// The `intent` score of `message` as evidence, when it reaches `threshold`: each cue that fired
/// with its weight and the word found, and the learned part.
pub(super) fn score(
    message: &Prepared,
    threshold: f32,
    cues: &Cues,
    learned_weight: f32,
    learned: &LazyScore<'_>,
) -> Option<String> {
    let found = cues.find(message);
    let fired = || {
        cues.cues
            .iter()
            .zip(&found)
            .filter_map(|(cue, f)| Some((cue, f.as_ref()?)))
    };
    let learned = match learned_weight {
        0.0 => None,
        weight => Some(learned.get() * weight),
    };
    let score = fired().map(|(cue, _)| cue.weight).sum::<f32>() + learned.unwrap_or(0.0);
    if score < threshold {
        return None;
    }
    let mut evidence: Vec<String> = fired()
        .map(|(cue, word)| format!("{}({:+}): {word}", cue.name, cue.weight))
        .collect();
    if let Some(learned) = learned {
        evidence.push(format!("learned({learned:+.1})"));
    }
    Some(format!(
        "intent {score:.1} ≥ {threshold}: {}",
        evidence.join("; ")
    ))
}
