//! `GET /api/v1/overview`: the console's first page as one answer — groups and members, messages
//! today and over 30 days, health stages, the last 24 hours of sends, and what needs attention
//! (dead and declining groups, groups WeCom released, failing feeds, failed or timed-out sends,
//! an outbox that does not move). Read from day totals and the cached health ranking, so it
//! answers in milliseconds with 10,000 groups.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{ApiError, AppState, blocking};
use crate::engine::health::Stage;
use crate::runtime::health::cache::Ranked;
use crate::store::{GroupRecord, GroupStatus, PendingSends, RecentSends};

/// Items listed under each alert (the count says how many there are in all).
const ALERT_ITEMS: usize = 20;
/// Days of messages in the chart.
const CHART_DAYS: u32 = 30;
/// A due send waiting this long means the outbox is stuck.
const STUCK_AFTER: Duration = Duration::minutes(10);
/// A group WeCom released this recently is an alert.
const RELEASES_SHOWN_FOR: Duration = Duration::days(7);

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/overview", get(overview))
}

#[derive(Serialize)]
struct Overview {
    generated_at: DateTime<Utc>,
    /// When the health figures (stages, members, dead and declining groups) were computed.
    health_computed_at: DateTime<Utc>,
    groups: GroupCounts,
    /// Members of the adopted groups: the member list where a bot account reports one, else
    /// the members seen speaking.
    members: u64,
    messages_today: u64,
    /// `[{"day", "messages"}]`, the last 30 local days, oldest first.
    messages_by_day: Vec<DayMessages>,
    stages: StageCounts,
    sends_24h: RecentSends,
    pending: PendingSends,
    alerts: Vec<Alert>,
    /// Every tag in use, for the group list's filter.
    tags: BTreeSet<String>,
}

#[derive(Serialize, Default)]
struct GroupCounts {
    adopted: u64,
    released: u64,
    /// Adopted groups the bot can post to but not hear (push-only webhooks).
    push_only: u64,
}

#[derive(Serialize)]
struct DayMessages {
    day: String,
    messages: u64,
}

#[derive(Serialize, Default)]
struct StageCounts {
    new: u64,
    steady: u64,
    declining: u64,
    dead: u64,
    /// Push-only groups: nothing to measure.
    unmeasured: u64,
}

/// Something an operator should look at: its kind, how many, and the first few.
#[derive(Serialize)]
struct Alert {
    /// `dead_group`, `declining_group`, `released_by_wecom`, `failing_feed`, `failed_send`,
    /// `timed_out_send`, `stuck_outbox`.
    kind: &'static str,
    count: usize,
    items: Vec<AlertItem>,
}

#[derive(Serialize)]
struct AlertItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    chat_id: Option<String>,
    name: String,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<DateTime<Utc>>,
}

async fn overview(State(state): State<Arc<AppState>>) -> Result<Json<Overview>, ApiError> {
    let now = Utc::now();
    let store = state.store.clone();
    let (groups, totals, sends, pending) = blocking(move || {
        Ok((
            store.groups()?,
            store.message_totals(now, CHART_DAYS)?,
            store.sends_since(now - Duration::hours(24), ALERT_ITEMS)?,
            store.pending_summary(now)?,
        ))
    })
    .await?;
    let ranked = super::groups::health_ranking(&state, &groups).await?;
    let feeds = state
        .scheduler
        .feeds
        .statuses(&state.scripts.current().content.feeds);
    let name_of = |chat: &crate::domain::ChatId| state.directory.get(chat).name.clone();

    let mut counts = GroupCounts::default();
    let mut members = 0;
    let mut released = Vec::new();
    for group in &groups {
        match group.status {
            GroupStatus::Adopted => {
                counts.adopted += 1;
                counts.push_only += u64::from(group.is_push_only());
                members += ranked
                    .of(&group.chat_id)
                    .and_then(|h| h.members)
                    .unwrap_or(group.members_seen);
            }
            GroupStatus::Released => {
                counts.released += 1;
                if released_by_wecom(group, now) {
                    released.push(group);
                }
            }
        }
    }
    released.sort_by_key(|g| std::cmp::Reverse(g.released_at));

    let mut alerts = Vec::new();
    for (stage, kind) in [
        (Stage::Dead, "dead_group"),
        (Stage::Declining, "declining_group"),
    ] {
        let of_stage: Vec<_> = ranked
            .groups
            .iter()
            .filter(|h| h.measured && h.stage == stage)
            .collect();
        alerts.push(Alert {
            kind,
            count: of_stage.len(),
            items: of_stage
                .iter()
                .take(ALERT_ITEMS)
                .map(|h| AlertItem {
                    chat_id: Some(h.chat_id.to_string()),
                    name: h.name.clone(),
                    detail: format!("健康分 {}：{}", h.score, h.reasons.join("；")),
                    at: None,
                })
                .collect(),
        });
    }
    alerts.push(Alert {
        kind: "released_by_wecom",
        count: released.len(),
        items: released
            .iter()
            .take(ALERT_ITEMS)
            .map(|g| AlertItem {
                chat_id: Some(g.chat_id.to_string()),
                name: name_of(&g.chat_id),
                detail: g.release_reason.clone().unwrap_or_default(),
                at: g.released_at,
            })
            .collect(),
    });
    let failing: Vec<_> = feeds.iter().filter(|f| f.state == "failing").collect();
    alerts.push(Alert {
        kind: "failing_feed",
        count: failing.len(),
        items: failing
            .iter()
            .take(ALERT_ITEMS)
            .map(|f| AlertItem {
                chat_id: None,
                name: f.name.clone(),
                detail: format!(
                    "连续失败 {} 次：{}",
                    f.consecutive_failures,
                    f.last_error.clone().unwrap_or_default()
                ),
                at: f.last_attempt_at,
            })
            .collect(),
    });
    for (state_name, kind, count) in [
        (
            crate::store::OutboxState::Failed,
            "failed_send",
            sends.failed,
        ),
        (
            crate::store::OutboxState::TimedOut,
            "timed_out_send",
            sends.timed_out,
        ),
    ] {
        alerts.push(Alert {
            kind,
            count: usize::try_from(count).unwrap_or(usize::MAX),
            items: sends
                .problems
                .iter()
                .filter(|s| s.state == state_name)
                .map(|s| AlertItem {
                    name: s.chat.as_ref().map(&name_of).unwrap_or_default(),
                    chat_id: s.chat.as_ref().map(ToString::to_string),
                    detail: format!(
                        "{}：{}",
                        s.purpose,
                        s.last_error.clone().unwrap_or_default()
                    ),
                    at: s.updated_at.or(Some(s.created_at)),
                })
                .collect(),
        });
    }
    let stuck = pending
        .oldest_due_at
        .filter(|due| now - *due >= STUCK_AFTER);
    alerts.push(Alert {
        kind: "stuck_outbox",
        count: usize::from(stuck.is_some()),
        items: stuck
            .map(|due| AlertItem {
                chat_id: None,
                name: "发送队列".into(),
                detail: format!(
                    "{} 条待发送，最早一条应在 {} 分钟前发出",
                    pending.count,
                    (now - due).num_minutes()
                ),
                at: Some(due),
            })
            .into_iter()
            .collect(),
    });

    let tags = state
        .directory
        .all()
        .into_iter()
        .flat_map(|(_, s)| s.tags.iter().cloned().collect::<Vec<_>>())
        .collect();
    Ok(Json(Overview {
        generated_at: now,
        health_computed_at: ranked.computed_at,
        members,
        messages_today: totals.last().map_or(0, |(_, n)| *n),
        messages_by_day: totals
            .into_iter()
            .map(|(day, messages)| DayMessages { day, messages })
            .collect(),
        stages: stage_counts(&ranked),
        groups: counts,
        sends_24h: sends,
        pending,
        alerts,
        tags,
    }))
}

/// A group WeCom released (its robot refused with 93000-style errcodes) in the last week.
fn released_by_wecom(group: &GroupRecord, now: DateTime<Utc>) -> bool {
    group
        .release_reason
        .as_deref()
        .is_some_and(|r| r.starts_with("WeCom errcode"))
        && group
            .released_at
            .is_some_and(|at| now - at <= RELEASES_SHOWN_FOR)
}

fn stage_counts(ranked: &Ranked) -> StageCounts {
    let mut counts = StageCounts::default();
    for group in &ranked.groups {
        *match (group.measured, group.stage) {
            (false, _) => &mut counts.unmeasured,
            (true, Stage::New) => &mut counts.new,
            (true, Stage::Steady) => &mut counts.steady,
            (true, Stage::Declining) => &mut counts.declining,
            (true, Stage::Dead) => &mut counts.dead,
        } += 1;
    }
    counts
}
