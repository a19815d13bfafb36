//! Group health, the pure part: from a group's recent activity — messages per day, distinct
//! speakers, how concentrated the talk is, joins and leaves, replies to the bot's posts, the
//! latest red-envelope verdict — a score from 0 to 100, a lifecycle stage (new, steady,
//! declining, dead) and what the operator should do about it. The caller gathers the figures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::red_envelope::Verdict;
use crate::domain::ChatId;
use crate::engine::message::Message;

/// How long a group counts as new: the first 30 days of intensive operation.
pub const NEW_FOR_DAYS: i64 = 30;

/// What is known about a group's recent weeks.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthInput {
    /// Members now (0 when unknown: the group robot cannot list them).
    pub members: u64,
    pub adopted_at: DateTime<Utc>,
    /// Messages per day over the last 7 days, and over the 21 days before them.
    pub messages_per_day: f64,
    pub earlier_messages_per_day: f64,
    /// Distinct speakers in the last 7 days.
    pub speakers: u64,
    /// Share of the last 7 days' messages written by the 3 most talkative members (0–1).
    pub top3_share: f64,
    /// Joins and leaves in the last 7 days.
    pub joins: u64,
    pub leaves: u64,
    /// The bot's posts in the last 7 days, and member messages within 30 minutes after them.
    pub bot_posts: u64,
    pub replies_to_posts: u64,
    /// The latest red-envelope test's verdict, if any in the last 30 days.
    pub envelope: Option<Verdict>,
    /// The channel sees the group's messages. A WeCom customer group's does not (the app sees
    /// only members joining and leaving): it is judged on its members instead.
    pub messages_seen: bool,
}

/// Where a group is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The first 30 days after adoption.
    New,
    Steady,
    Declining,
    Dead,
}

/// A group's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// 0 (dead) to 100.
    pub score: u32,
    pub stage: Stage,
    /// What the operator should do, in the operators' language.
    pub action: &'static str,
    /// What drove the stage (for the operator reading the ranking).
    pub reasons: Vec<String>,
}

/// A share from 0 to 1 of how far `value` goes towards `full`.
fn towards(value: f64, full: f64) -> f64 {
    if full <= 0.0 {
        0.0
    } else {
        (value / full).clamp(0.0, 1.0)
    }
}

/// Assesses a group whose messages the channel cannot see (a WeCom customer group) on what it
/// can: its size, joins against leaves, and the share of members who left in a week.
fn assess_by_members(input: &HealthInput, now: DateTime<Utc>) -> Health {
    let members = input.members as f64;
    // 30 points: fifty members or more.
    let size = 30.0 * towards(members, 50.0);
    // 40 points: more joining than leaving.
    let growth = match input.joins.cmp(&input.leaves) {
        std::cmp::Ordering::Greater => 40.0,
        std::cmp::Ordering::Equal => 24.0,
        std::cmp::Ordering::Less => 40.0 * towards(input.joins as f64, input.leaves as f64) * 0.5,
    };
    // 30 points: few leaving — a tenth of the members in a week is none.
    let churn = input.leaves as f64 / members.max(1.0);
    let keeping = 30.0 * (1.0 - towards(churn, 0.1));
    let score = (size + growth + keeping).round() as u32;
    let mut reasons = vec!["客户群：看不到群消息，按成员数和进退群评估".to_owned()];
    let heavy_churn = churn >= 0.1 || input.leaves > input.joins.max(1) * 2;
    if heavy_churn {
        reasons.push(format!(
            "退群多于入群：{} 人退出，{} 人加入（共 {} 人）",
            input.leaves, input.joins, input.members
        ));
    }
    let stage = if (now - input.adopted_at).num_days() < NEW_FOR_DAYS {
        Stage::New
    } else if input.members <= 2 || churn >= 0.3 || score < 20 {
        Stage::Dead
    } else if heavy_churn || score < 45 {
        Stage::Declining
    } else {
        Stage::Steady
    };
    let action = match stage {
        Stage::New => "新群运营期：请群主选用入群欢迎语，每天确认早报群发",
        Stage::Steady => "保持现有节奏：早报照常，请群主每天确认群发",
        Stage::Declining => "问问最近退群的原因，请群主发起话题或活动",
        Stage::Dead => "把还留下的成员引导到活跃的群，然后解散本群",
    };
    Health {
        score: score.min(100),
        stage,
        action,
        reasons,
    }
}

/// Assesses a group at `now`.
pub fn assess(input: &HealthInput, now: DateTime<Utc>) -> Health {
    if !input.messages_seen {
        return assess_by_members(input, now);
    }
    // Size-relative where the size is known; a robot group is judged on absolute figures.
    let size = if input.members > 0 {
        input.members as f64
    } else {
        100.0
    };
    // 30 points: about one message a day per 5 members is a lively group.
    let activity = 30.0 * towards(input.messages_per_day, size / 5.0);
    // 25 points: a tenth of the members speaking in a week.
    let breadth = 25.0 * towards(input.speakers as f64, size / 10.0);
    // 15 points: talk not carried by three people.
    let balance = if input.messages_per_day > 0.0 {
        15.0 * (1.0 - input.top3_share.clamp(0.0, 1.0))
    } else {
        0.0
    };
    // 10 points: more joining than leaving.
    let growth = match input.joins.cmp(&input.leaves) {
        std::cmp::Ordering::Greater => 10.0,
        std::cmp::Ordering::Equal => 6.0,
        std::cmp::Ordering::Less => 10.0 * towards(input.joins as f64, input.leaves as f64) * 0.5,
    };
    // 10 points: members answer the bot's posts (two replies a post is plenty).
    let engagement = 10.0 * towards(input.replies_to_posts as f64, 2.0 * input.bot_posts as f64);
    // 10 points: the latest envelope.
    let envelope = match input.envelope {
        Some(Verdict::Alive) => 10.0,
        Some(Verdict::Sluggish) => 5.0,
        Some(Verdict::Dead) => 0.0,
        None => 5.0,
    };
    let score = (activity + breadth + balance + growth + engagement + envelope).round() as u32;

    let mut reasons = Vec::new();
    let age_days = (now - input.adopted_at).num_days();
    let falling = input.earlier_messages_per_day > 0.0
        && input.messages_per_day < 0.6 * input.earlier_messages_per_day;
    if input.envelope == Some(Verdict::Dead) {
        reasons.push("最近一次红包测试：没人抢".to_owned());
    }
    if input.messages_per_day == 0.0 {
        reasons.push("最近 7 天没有人发言".to_owned());
    }
    if falling {
        reasons.push(format!(
            "发言量下降：每天 {:.1} 条，之前每天 {:.1} 条",
            input.messages_per_day, input.earlier_messages_per_day
        ));
    }
    if input.leaves > input.joins.max(1) * 2 {
        reasons.push(format!(
            "退群多于入群：{} 人退出，{} 人加入",
            input.leaves, input.joins
        ));
    }
    let stage = if age_days < NEW_FOR_DAYS {
        Stage::New
    } else if input.envelope == Some(Verdict::Dead) || input.messages_per_day == 0.0 || score < 20 {
        Stage::Dead
    } else if falling || input.leaves > input.joins.max(1) * 2 || score < 45 {
        Stage::Declining
    } else {
        Stage::Steady
    };
    if reasons.is_empty() && stage != Stage::Steady && stage != Stage::New {
        reasons.push(format!("健康分 {score}"));
    }
    let action = match stage {
        Stage::New => "新群运营期：每天发起话题，安排小当家带动发言，欢迎新人自我介绍",
        Stage::Steady => "保持现有节奏：早报、每周栏目照常",
        Stage::Declining => "发起讨论或红包测试唤醒沉默成员，看看最近退群的原因",
        Stage::Dead => "把还活跃的成员引导到活跃的群，然后解散本群",
    };
    Health {
        score: score.min(100),
        stage,
        action,
        reasons,
    }
}

/// The most groups a digest lists.
pub const MAX_DIGEST_GROUPS: usize = 50;
/// A digest slot missed while the service was down is still pushed this long after it.
pub const DIGEST_CATCH_UP: Duration = Duration::from_secs(6 * 3600);

/// The weekly digest.
#[derive(Debug, Clone)]
pub struct Digest {
    /// Off: checked like the rest, never pushed.
    pub enabled: bool,
    pub cron_text: String,
    pub cron: croner::Cron,
    pub timezone: chrono_tz::Tz,
    /// The group it is pushed to.
    pub to: ChatId,
    /// Groups listed, those needing attention most first.
    pub limit: usize,
    pub message: Message,
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        (
            self.enabled,
            &self.cron_text,
            self.timezone,
            &self.to,
            self.limit,
            &self.message,
        ) == (
            other.enabled,
            &other.cron_text,
            other.timezone,
            &other.to,
            other.limit,
            &other.message,
        )
    }
}

/// The loaded file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthScripts {
    /// `None`: no `[digest]` section (or no file).
    pub digest: Option<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    fn days_ago(days: i64) -> DateTime<Utc> {
        now() - chrono::Duration::days(days)
    }

    /// A 300-member group a year old, lively and balanced.
    fn active() -> HealthInput {
        HealthInput {
            members: 300,
            adopted_at: days_ago(365),
            messages_per_day: 80.0,
            earlier_messages_per_day: 75.0,
            speakers: 45,
            top3_share: 0.25,
            joins: 12,
            leaves: 3,
            bot_posts: 7,
            replies_to_posts: 20,
            envelope: Some(Verdict::Alive),
            messages_seen: true,
        }
    }

    #[test]
    fn a_customer_group_is_judged_on_its_members_not_on_unseen_messages() {
        let customer = HealthInput {
            members: 180,
            messages_per_day: 0.0,
            earlier_messages_per_day: 0.0,
            speakers: 0,
            top3_share: 0.0,
            joins: 6,
            leaves: 2,
            bot_posts: 0,
            replies_to_posts: 0,
            envelope: None,
            messages_seen: false,
            ..active()
        };
        let h = assess(&customer, now());
        assert_eq!(h.stage, Stage::Steady, "{h:?}");
        assert!(h.score >= 80, "{h:?}");
        assert!(h.reasons[0].contains("看不到群消息"), "{h:?}");
        let emptying = HealthInput {
            joins: 1,
            leaves: 30,
            ..customer.clone()
        };
        let h = assess(&emptying, now());
        assert_eq!(h.stage, Stage::Declining, "{h:?}");
        assert!(
            h.reasons.iter().any(|r| r.contains("退群多于入群")),
            "{h:?}"
        );
        let gone = HealthInput {
            leaves: 60,
            ..emptying
        };
        assert_eq!(assess(&gone, now()).stage, Stage::Dead);
        let only_the_owner = HealthInput {
            members: 1,
            joins: 0,
            leaves: 0,
            ..customer
        };
        assert_eq!(assess(&only_the_owner, now()).stage, Stage::Dead);
    }

    #[test]
    fn an_active_group_is_steady_with_a_high_score() {
        let h = assess(&active(), now());
        assert_eq!(h.stage, Stage::Steady);
        assert!(h.score >= 85, "{h:?}");
        assert!(h.reasons.is_empty(), "{h:?}");
    }

    #[test]
    fn a_declining_group_is_named_with_its_reasons() {
        let declining = HealthInput {
            messages_per_day: 20.0,
            earlier_messages_per_day: 70.0,
            speakers: 12,
            top3_share: 0.6,
            joins: 1,
            leaves: 9,
            replies_to_posts: 3,
            envelope: Some(Verdict::Sluggish),
            ..active()
        };
        let h = assess(&declining, now());
        assert_eq!(h.stage, Stage::Declining);
        assert!(h.score < assess(&active(), now()).score);
        assert!(h.reasons.iter().any(|r| r.contains("发言量下降")), "{h:?}");
        assert!(
            h.reasons.iter().any(|r| r.contains("退群多于入群")),
            "{h:?}"
        );
    }

    #[test]
    fn a_dead_group_is_told_to_merge_and_disband() {
        let dead = HealthInput {
            messages_per_day: 0.3,
            earlier_messages_per_day: 0.5,
            speakers: 1,
            top3_share: 1.0,
            joins: 0,
            leaves: 2,
            replies_to_posts: 0,
            envelope: Some(Verdict::Dead),
            ..active()
        };
        let h = assess(&dead, now());
        assert_eq!(h.stage, Stage::Dead);
        assert!(h.score < 20, "{h:?}");
        assert!(h.action.contains("解散"), "{h:?}");
        assert!(h.reasons.iter().any(|r| r.contains("红包")), "{h:?}");
        // Silence alone is death too, envelope or not.
        let silent = HealthInput {
            messages_per_day: 0.0,
            envelope: None,
            ..dead
        };
        assert_eq!(assess(&silent, now()).stage, Stage::Dead);
    }

    #[test]
    fn a_new_group_is_new_whatever_its_figures() {
        let young = HealthInput {
            adopted_at: days_ago(10),
            messages_per_day: 0.0,
            ..active()
        };
        let h = assess(&young, now());
        assert_eq!(h.stage, Stage::New);
        assert!(h.action.contains("新群"));
    }

    #[test]
    fn unknown_member_counts_and_empty_weeks_do_not_break_the_score() {
        let robot = HealthInput {
            members: 0,
            bot_posts: 0,
            replies_to_posts: 0,
            ..active()
        };
        let h = assess(&robot, now());
        assert!(h.score <= 100);
        let nothing = HealthInput {
            members: 0,
            messages_per_day: 0.0,
            earlier_messages_per_day: 0.0,
            speakers: 0,
            top3_share: 0.0,
            joins: 0,
            leaves: 0,
            bot_posts: 0,
            replies_to_posts: 0,
            envelope: None,
            ..active()
        };
        let h = assess(&nothing, now());
        assert_eq!(h.stage, Stage::Dead);
        assert!(h.score <= 20, "{h:?}");
    }
}
