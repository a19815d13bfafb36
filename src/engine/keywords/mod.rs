//! Keyword replies: the rules operators write in `bot-scripts/keywords.toml`, compiled into one
//! matcher. Every distinct literal pattern of every rule goes into a single Aho-Corasick automaton
//! (a character-wise double-array one, `daachorse`: messages are mostly Chinese), so the cost of
//! matching a message barely grows with the number of rules; regex rules go into one `RegexSet`;
//! exact rules into a hash map. Pure: the caller passes the time and the cooldowns.

use std::collections::HashMap;
use std::time::Duration;

use daachorse::CharwiseDoubleArrayAhoCorasick;
use regex::RegexSet;

use super::scope::{Place, Scope};
use crate::engine::message::Message;

/// How a rule's patterns are compared with the (normalised) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// The whole message equals one of the patterns.
    Exact,
    /// The message contains one of the patterns.
    Contains,
    /// The message contains every pattern, in any order.
    AllOf,
    /// One of the patterns (regular expressions) matches somewhere in the message.
    Regex,
}

impl MatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMode::Exact => "exact",
            MatchMode::Contains => "contains",
            MatchMode::AllOf => "all_of",
            MatchMode::Regex => "regex",
        }
    }
}

/// A daily window in local time, in minutes after midnight; `start > end` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u16,
    pub end: u16,
}

impl Window {
    pub fn contains(self, minute: u16) -> bool {
        if self.start <= self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// One validated keyword rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordRule {
    /// Unique per scope: a rule with the same id in a narrower scope replaces this one there.
    pub id: String,
    pub scope: Scope,
    pub mode: MatchMode,
    /// Normalised patterns (regex source for `Regex`).
    pub patterns: Vec<String>,
    /// Higher wins; ties go to the rule written first.
    pub priority: i32,
    /// After answering in a group, the rule stays silent there for this long.
    pub cooldown: Duration,
    /// Answer only when the bot is @-mentioned.
    pub mentioned_only: bool,
    /// Local-time windows in which the rule is active; empty means always.
    pub hours: Vec<Window>,
    pub enabled: bool,
    pub reply: Message,
}

/// What a message is matched against.
#[derive(Debug, Clone, Copy)]
pub struct MatchInput<'a> {
    /// The normalised text.
    pub text: &'a str,
    /// Whether the bot was @-mentioned.
    pub mentioned: bool,
    /// Local time of day, in minutes after midnight.
    pub minute_of_day: u16,
}

/// All keyword rules, compiled.
#[derive(Default)]
pub struct KeywordSet {
    rules: Vec<KeywordRule>,
    /// One automaton over every distinct literal pattern; a match's value is the literal's index.
    automaton: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    /// For each distinct literal, its owners (rule index, the pattern's index within the rule)
    /// are `literal_owners[owner_start[i]..owner_start[i + 1]]`.
    owner_start: Vec<u32>,
    literal_owners: Vec<(u32, u8)>,
    exact: HashMap<String, Vec<u32>>,
    regexes: Option<RegexSet>,
    regex_owner: Vec<u32>,
    /// For each rule: the index into `variants` of the rules sharing its id.
    family: Vec<u32>,
    /// Rules sharing an id (in different scopes), by family.
    variants: Vec<Vec<u32>>,
}

impl std::fmt::Debug for KeywordSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywordSet")
            .field("rules", &self.rules.len())
            .field("literals", &self.owner_start.len().saturating_sub(1))
            .finish()
    }
}

/// A rule set that could not be compiled (a bad regex, too many patterns in one rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule:?}: {reason}")]
pub struct CompileError {
    pub rule: String,
    pub reason: String,
}

/// `all_of` tracks matched patterns in a 64-bit mask.
pub const MAX_PATTERNS_PER_RULE: usize = 64;

impl KeywordSet {
    /// Compiles `rules` (patterns already normalised).
    pub fn build(rules: Vec<KeywordRule>) -> Result<Self, CompileError> {
        // Distinct literals, in first-seen order, with every (rule, pattern) that uses each.
        let mut literal_index: HashMap<&str, usize> = HashMap::new();
        let mut owners_of: Vec<Vec<(u32, u8)>> = Vec::new();
        let mut literals: Vec<&str> = Vec::new();
        let mut exact: HashMap<String, Vec<u32>> = HashMap::new();
        let mut regex_sources = Vec::new();
        let mut regex_owner = Vec::new();
        let mut family = Vec::with_capacity(rules.len());
        let mut variants: Vec<Vec<u32>> = Vec::new();
        let mut family_of: HashMap<&str, u32> = HashMap::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let index = index as u32;
            let f = *family_of.entry(rule.id.as_str()).or_insert_with(|| {
                variants.push(Vec::new());
                (variants.len() - 1) as u32
            });
            variants[f as usize].push(index);
            family.push(f);
            if rule.patterns.len() > MAX_PATTERNS_PER_RULE {
                return Err(CompileError {
                    rule: rule.id.clone(),
                    reason: format!("at most {MAX_PATTERNS_PER_RULE} patterns per rule"),
                });
            }
            for (p, pattern) in rule.patterns.iter().enumerate() {
                match rule.mode {
                    MatchMode::Contains | MatchMode::AllOf => {
                        let i = *literal_index.entry(pattern.as_str()).or_insert_with(|| {
                            literals.push(pattern.as_str());
                            owners_of.push(Vec::new());
                            literals.len() - 1
                        });
                        owners_of[i].push((index, p as u8));
                    }
                    MatchMode::Exact => exact.entry(pattern.clone()).or_default().push(index),
                    MatchMode::Regex => {
                        regex_sources.push(pattern.as_str());
                        regex_owner.push(index);
                    }
                }
            }
        }
        let automaton = if literals.is_empty() {
            None
        } else {
            let patvals = literals.iter().enumerate().map(|(i, p)| (*p, i as u32));
            Some(
                CharwiseDoubleArrayAhoCorasick::with_values(patvals).map_err(|e| CompileError {
                    rule: "*".into(),
                    reason: e.to_string(),
                })?,
            )
        };
        let mut owner_start = Vec::with_capacity(owners_of.len() + 1);
        let mut literal_owners = Vec::new();
        for owners in owners_of {
            owner_start.push(literal_owners.len() as u32);
            literal_owners.extend(owners);
        }
        owner_start.push(literal_owners.len() as u32);
        let regexes = if regex_sources.is_empty() {
            None
        } else {
            Some(RegexSet::new(&regex_sources).map_err(|e| {
                // Name the rule whose pattern is at fault.
                let rule = regex_sources
                    .iter()
                    .position(|s| regex::Regex::new(s).is_err())
                    .map(|i| rules[regex_owner[i] as usize].id.clone())
                    .unwrap_or_else(|| "*".into());
                CompileError {
                    rule,
                    reason: e.to_string(),
                }
            })?)
        };
        Ok(Self {
            family,
            variants,
            rules,
            automaton,
            owner_start,
            literal_owners,
            exact,
            regexes,
            regex_owner,
        })
    }

    pub fn rules(&self) -> &[KeywordRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether rule `index` is the version of its id in force at `place`: its scope covers
    /// the place and no version in a narrower scope does.
    fn in_force(&self, index: u32, place: Place<'_>) -> bool {
        let rule = &self.rules[index as usize];
        if !rule.scope.covers(place) {
            return false;
        }
        let versions = &self.variants[self.family[index as usize] as usize];
        versions.len() == 1
            || versions
                .iter()
                .filter(|&&i| self.rules[i as usize].scope.covers(place))
                // The narrowest scope wins; between equals, the rule written first.
                .max_by_key(|&&i| (self.rules[i as usize].scope.rank(), std::cmp::Reverse(i)))
                == Some(&index)
    }

    /// The rule that answers `input` at `place`: the highest-priority matching rule that is in
    /// force there (scope), enabled (in the file and for the group), active at this time of day
    /// and allowed without a mention. Cooldowns are the caller's.
    pub fn find(&self, input: &MatchInput<'_>, place: Place<'_>) -> Option<&KeywordRule> {
        let disabled = &place.settings.disabled_rules;
        let mut best: Option<u32> = None;
        let mut consider = |index: u32| {
            let rule = &self.rules[index as usize];
            let eligible = rule.enabled
                && self.in_force(index, place)
                && (disabled.is_empty() || !disabled.contains(&rule.id))
                && (input.mentioned || !rule.mentioned_only)
                && (rule.hours.is_empty()
                    || rule.hours.iter().any(|w| w.contains(input.minute_of_day)));
            if !eligible {
                return;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    let current = &self.rules[b as usize];
                    rule.priority > current.priority
                        || (rule.priority == current.priority && index < b)
                }
            };
            if better {
                best = Some(index);
            }
        };

        if let Some(ac) = &self.automaton {
            // Masks of matched patterns, per rule, for all_of; few rules match any one message.
            let mut seen: Vec<(u32, u64)> = Vec::new();
            for m in ac.find_overlapping_iter(input.text) {
                let literal = m.value() as usize;
                let owners =
                    self.owner_start[literal] as usize..self.owner_start[literal + 1] as usize;
                for &(rule, pattern) in &self.literal_owners[owners] {
                    match seen.iter_mut().find(|(r, _)| *r == rule) {
                        Some((_, mask)) => *mask |= 1 << pattern,
                        None => seen.push((rule, 1 << pattern)),
                    }
                }
            }
            for (rule, mask) in seen {
                let r = &self.rules[rule as usize];
                let complete = match r.mode {
                    MatchMode::AllOf => mask.count_ones() as usize == r.patterns.len(),
                    _ => true,
                };
                if complete {
                    consider(rule);
                }
            }
        }
        if let Some(rules) = (!self.exact.is_empty())
            .then(|| self.exact.get(input.text))
            .flatten()
        {
            rules.iter().copied().for_each(&mut consider);
        }
        if let Some(set) = &self.regexes {
            for i in set.matches(input.text).iter() {
                consider(self.regex_owner[i]);
            }
        }
        best.map(|i| &self.rules[i as usize])
    }
}

#[cfg(test)]
mod tests;
