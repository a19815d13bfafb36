//! Welcoming new members, pure. Joins are gathered per group for a window (default 30 s) and
//! answered with one welcome that @-mentions everyone who joined ([`GroupWelcomes`]); a group
//! gets at most one welcome per interval (default 5 min), so a raid of joins cannot make the bot
//! spam — joins during the interval wait and are welcomed together when it ends. A member
//! welcomed in a group is not welcomed there again within the quiet period (default 7 days).
//! The template is chosen by scope (group, tag, global: the narrowest wins) and join scene.

use std::time::Duration;

use chrono::{DateTime, Utc};
use minijinja::{Value, context};

use super::scope::{Place, Scope};
use super::vars;
use crate::domain::{Action, JoinScene, Joiner, Role};
use crate::engine::Scripts;
use crate::engine::message::Message;
use crate::engine::template::RenderError;

/// When welcomes go out in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WelcomeTiming {
    /// Joins within this window of the first are welcomed together.
    pub batch_window: Duration,
    /// At most one welcome per group per interval.
    pub min_interval: Duration,
    /// A member welcomed in a group is not welcomed there again for this long.
    pub rejoin_quiet: Duration,
}

impl Default for WelcomeTiming {
    fn default() -> Self {
        Self {
            batch_window: Duration::from_secs(30),
            min_interval: Duration::from_secs(300),
            rejoin_quiet: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Timing set for a scope; unset fields keep the wider scope's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingOverride {
    pub scope: Scope,
    pub batch_window: Option<Duration>,
    pub min_interval: Option<Duration>,
    pub rejoin_quiet: Option<Duration>,
}

/// One welcome template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeTemplate {
    pub scope: Scope,
    /// `None`: any scene.
    pub scene: Option<JoinScene>,
    /// `false` switches welcomes off where this template is the one in force.
    pub enabled: bool,
    pub message: Message,
}

/// The longest text of a WeCom group welcome template, in bytes (WeCom's limit).
pub const WECOM_WELCOME_MAX_BYTES: usize = 3000;

/// A welcome WeCom sends itself in customer groups (入群欢迎语素材): plain text, `%NICKNAME%`
/// standing for the newcomer, kept in WeCom as a template the groups' owners attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WecomWelcome {
    /// The operator's name for it (unique in the file): how it is found again after an edit.
    pub name: String,
    pub text: String,
}

/// The welcome part of the scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WelcomeScripts {
    pub templates: Vec<WelcomeTemplate>,
    pub timing: Vec<TimingOverride>,
    /// Customer groups' welcomes, as WeCom templates.
    pub wecom_templates: Vec<WecomWelcome>,
}

impl WelcomeScripts {
    /// The timing in force at `place`: the defaults, then global, tag and group settings.
    pub fn timing(&self, place: Place<'_>) -> WelcomeTiming {
        let mut timing = WelcomeTiming::default();
        let mut applicable: Vec<&TimingOverride> = self
            .timing
            .iter()
            .filter(|t| t.scope.covers(place))
            .collect();
        applicable.sort_by_key(|t| t.scope.rank());
        for t in applicable {
            timing.batch_window = t.batch_window.unwrap_or(timing.batch_window);
            timing.min_interval = t.min_interval.unwrap_or(timing.min_interval);
            timing.rejoin_quiet = t.rejoin_quiet.unwrap_or(timing.rejoin_quiet);
        }
        timing
    }

    /// The template in force at `place` for joins by `scene` (`None`: mixed scenes): the
    /// narrowest scope wins, and within a scope a template for the scene beats one for any
    /// scene. `None` when there is none or the winner is switched off.
    pub fn template(&self, place: Place<'_>, scene: Option<JoinScene>) -> Option<&WelcomeTemplate> {
        self.templates
            .iter()
            .enumerate()
            .filter(|(_, t)| t.scope.covers(place))
            .filter(|(_, t)| t.scene.is_none() || t.scene == scene)
            // Narrowest scope, then exact scene, then the one written first.
            .max_by_key(|(i, t)| (t.scope.rank(), t.scene.is_some(), std::cmp::Reverse(*i)))
            .map(|(_, t)| t)
            .filter(|t| t.enabled)
    }
}

/// The joins waiting in one group, and when it was last welcomed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupWelcomes {
    pending: Vec<Joiner>,
    opened_at: Option<DateTime<Utc>>,
    last_welcome_at: Option<DateTime<Utc>>,
}

fn after(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at.checked_add_signed(chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl GroupWelcomes {
    /// Adds joins (a member already waiting is kept once).
    pub fn add(&mut self, joiners: impl IntoIterator<Item = Joiner>, now: DateTime<Utc>) {
        for joiner in joiners {
            if !self
                .pending
                .iter()
                .any(|p| p.member.user_id == joiner.member.user_id)
            {
                self.pending.push(joiner);
            }
        }
        if !self.pending.is_empty() && self.opened_at.is_none() {
            self.opened_at = Some(now);
        }
    }

    /// Members waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the waiting joins are due: the end of the batch window, but not before the interval
    /// since the last welcome has passed.
    pub fn due_at(&self, timing: &WelcomeTiming) -> Option<DateTime<Utc>> {
        let window_end = after(self.opened_at?, timing.batch_window);
        Some(match self.last_welcome_at {
            Some(last) => window_end.max(after(last, timing.min_interval)),
            None => window_end,
        })
    }

    /// The waiting joins, when they are due at `now`; the group counts as welcomed at `now`.
    pub fn take_due(&mut self, now: DateTime<Utc>, timing: &WelcomeTiming) -> Option<Vec<Joiner>> {
        if self.due_at(timing)? > now {
            return None;
        }
        self.opened_at = None;
        self.last_welcome_at = Some(now);
        Some(std::mem::take(&mut self.pending))
    }

    /// Whether nothing waits and the interval has long passed (the entry can be dropped).
    pub fn is_idle(&self, now: DateTime<Utc>, timing: &WelcomeTiming) -> bool {
        self.pending.is_empty()
            && self
                .last_welcome_at
                .is_none_or(|last| after(last, timing.min_interval) <= now)
    }
}

/// What to do with a due batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The welcome post (none when nobody is left to welcome or welcomes are switched off).
    pub action: Option<Action>,
    /// Members the post welcomes (to record).
    pub welcomed: Vec<String>,
    /// Members left out: welcomed here within the quiet period.
    pub recently_welcomed: Vec<String>,
    pub problem: Option<RenderError>,
}

/// The welcome for a due batch at `place`. `last_welcomed(user)` says when a member was last
/// welcomed in this group.
pub fn compose(
    scripts: &Scripts,
    place: Place<'_>,
    joiners: Vec<Joiner>,
    last_welcomed: impl Fn(&str) -> Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Welcome {
    let timing = scripts.welcome.timing(place);
    let (fresh, recent): (Vec<Joiner>, Vec<Joiner>) = joiners.into_iter().partition(|j| {
        last_welcomed(&j.member.user_id).is_none_or(|at| after(at, timing.rejoin_quiet) <= now)
    });
    let mut welcome = Welcome {
        action: None,
        welcomed: Vec::new(),
        recently_welcomed: recent.into_iter().map(|j| j.member.user_id).collect(),
        problem: None,
    };
    let Some(first) = fresh.first() else {
        return welcome;
    };
    let scene = fresh
        .iter()
        .all(|j| j.scene == first.scene)
        .then_some(first.scene);
    let Some(template) = scripts.welcome.template(place, scene) else {
        return welcome;
    };
    let ids: Vec<String> = fresh.iter().map(|j| j.member.user_id.clone()).collect();
    let vars = || -> Value {
        let members: Vec<Value> = fresh
            .iter()
            .map(|j| {
                context! {
                    id => &j.member.user_id,
                    name => vars::display_name(&j.member),
                    mention => format!("<@{}>", j.member.user_id),
                }
            })
            .collect();
        let mentions = ids
            .iter()
            .map(|id| format!("<@{id}>"))
            .collect::<Vec<_>>()
            .join(" ");
        let base = vars::base(&first.member, Role::Member, place.chat, place.settings, now);
        let group_rules = scripts
            .rules
            .as_ref()
            .and_then(|r| scripts.templates.render(&r.body, || base.clone()).ok())
            .unwrap_or_default();
        context! {
            members,
            mentions,
            group_rules,
            scene => scene.map(JoinScene::as_str).unwrap_or("mixed"),
            ..base
        }
    };
    match template.message.push(&scripts.templates, vars, &ids) {
        Ok(message) => {
            welcome.action = Some(Action::Post {
                message,
                purpose: "welcome",
            });
            welcome.welcomed = ids;
        }
        Err(e) => welcome.problem = Some(e),
    }
    welcome
}

#[cfg(test)]
mod tests;
