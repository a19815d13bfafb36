//! Scheduled jobs: the jobs loaded, a run on demand (or its dry run), and a run's report.

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, bad_request, blocking, internal_error};
use crate::store::OutboxState;

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{name}/run", post(run_job))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{run_id}", get(get_run))
        .route("/api/v1/runs/{run_id}/resend", post(resend))
}

/// One job as `GET /api/v1/jobs` shows it.
#[derive(Serialize)]
struct JobView {
    name: String,
    cron: String,
    timezone: String,
    /// `["all"]`, or the scopes targeted.
    targets: Vec<String>,
    quiet_hours: Vec<String>,
    spread_minutes: u64,
    catch_up_within_minutes: u64,
    enabled: bool,
    /// The next three slots, in the job's time zone.
    next: Vec<String>,
}

/// `GET /api/v1/jobs`: the scheduled jobs with their next fire times.
pub async fn list_jobs(State(state): State<Arc<AppState>>) -> Response {
    let scripts = state.scripts.current();
    let now = Utc::now();
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let jobs: Vec<JobView> = scripts
        .jobs
        .iter()
        .map(|j| JobView {
            name: j.name.clone(),
            cron: j.cron_text.clone(),
            timezone: j.timezone.name().to_owned(),
            targets: targets_view(&j.targets),
            quiet_hours: j
                .quiet_hours
                .iter()
                .map(|w| format!("{}-{}", hm(w.start), hm(w.end)))
                .collect(),
            spread_minutes: j.spread.as_secs() / 60,
            catch_up_within_minutes: j.catch_up_within.as_secs() / 60,
            enabled: j.enabled,
            next: j
                .next_slots(now, 3)
                .into_iter()
                .map(|t| t.with_timezone(&j.timezone).to_rfc3339())
                .collect(),
        })
        .collect();
    Json(jobs).into_response()
}

/// Targets as the API shows them: `["all"]` or the scopes.
pub(super) fn targets_view(targets: &crate::engine::jobs::Targets) -> Vec<String> {
    match targets {
        crate::engine::jobs::Targets::All => vec!["all".to_owned()],
        crate::engine::jobs::Targets::Scopes(scopes) => {
            scopes.iter().map(ToString::to_string).collect()
        }
    }
}

/// `POST /api/v1/jobs/{name}/run`: runs a job now for its current slot (the latest at or before
/// now). Groups already sent that slot are not sent it again. Answers `{"run_id": …, "runs":
/// […], "queued": n, "planned_at": …}` (one run per time zone the job runs in, its own first;
/// `queued` sends were new, each with `created_at` at or after `planned_at`). Inside the job's
/// quiet hours: 409 with when they end, nothing planned, unless `override_quiet_hours=true`.
pub async fn run_job(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(options): Query<RunOptions>,
) -> Response {
    if options.dry_run {
        return dry_run(&state, &name, options.slot, options.override_quiet_hours).await;
    }
    let run = state
        .scheduler
        .run_now(&name, options.slot, options.override_quiet_hours)
        .await;
    match run {
        // `run_id` is the run in the job's own time zone; groups with a time zone of their own
        // have their own slot, hence their own run, all listed in `runs`.
        Ok(runs) => {
            let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
            let queued: usize = runs.iter().map(|r| r.queued).sum();
            let planned_at = runs.iter().map(|r| r.at).min();
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "run_id": ids.first(),
                    "runs": ids,
                    "queued": queued,
                    "planned_at": planned_at,
                })),
            )
                .into_response()
        }
        Err(e) => run_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    #[serde(default)]
    dry_run: bool,
    /// `current` (default: the latest slot at or before now) or `next` (the coming slot, sent
    /// now — for jobs whose last slot is months ago).
    #[serde(default)]
    slot: crate::runtime::scheduler::SlotChoice,
    /// Send inside the job's quiet hours (otherwise a run there is refused).
    #[serde(default)]
    override_quiet_hours: bool,
}

/// `?override_quiet_hours=` of a resend.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendOptions {
    #[serde(default)]
    override_quiet_hours: bool,
}

/// `POST /api/v1/runs/{run_id}/resend`: sends the run's slot again to the groups that did not
/// get it (failed, skipped, timed out), never to one that did or still may; 202 `{"run_id",
/// "queued", "planned_at"}` (the new sends join the run, each `created_at` at or after
/// `planned_at`). 404 for an unknown run, 409 inside quiet hours without the override or when
/// the job is gone from schedules.toml.
pub async fn resend(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
    Query(options): Query<ResendOptions>,
) -> Response {
    match state
        .scheduler
        .resend(&run_id, options.override_quiet_hours)
        .await
    {
        Ok(run) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "run_id": run.run_id,
                "queued": run.queued,
                "planned_at": run.at,
            })),
        )
            .into_response(),
        Err(e) => run_error(e),
    }
}

fn run_error(e: crate::runtime::scheduler::RunError) -> Response {
    use crate::runtime::scheduler::RunError;
    match e {
        e @ (RunError::UnknownJob(_) | RunError::UnknownRun(_)) => {
            ApiError::not_found(e.to_string()).into_response()
        }
        e @ (RunError::QuietHours { .. } | RunError::JobGone { .. }) => {
            ApiError::conflict(e.to_string()).into_response()
        }
        e @ (RunError::NoSlot(_) | RunError::NoNextSlot(_)) => bad_request(e.to_string()),
        e => internal_error(e),
    }
}

/// `POST /api/v1/jobs/{name}/run?dry_run=true`: the message every target would get for the
/// current slot, rendered, with the reason a send would be skipped; nothing is sent or recorded.
async fn dry_run(
    state: &AppState,
    name: &str,
    which: crate::runtime::scheduler::SlotChoice,
    override_quiet_hours: bool,
) -> Response {
    let preview = match state
        .scheduler
        .dry_run(name, which, override_quiet_hours)
        .await
    {
        Ok(preview) => preview,
        Err(e) => return run_error(e),
    };
    let targets: Vec<serde_json::Value> = preview
        .sends
        .iter()
        .map(|s| {
            serde_json::json!({
                "group": s.chat.as_ref().map(ToString::to_string),
                "run_id": s.run,
                "not_before": s.not_before,
                "skip": s.skip,
                "message": s.message,
            })
        })
        .collect();
    Json(serde_json::json!({
        "job": name,
        "dry_run": true,
        // Set when the run would be refused (quiet hours): nothing would be sent.
        "refused": preview.refused,
        "planned": targets.len(),
        "targets": targets,
    }))
    .into_response()
}

/// `?job=&limit=&cursor=` of the run history.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    job: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/v1/runs?job=&limit=&cursor=`: the broadcast runs planned here, newest first, a page
/// at a time (`{"runs": [{"run_id", "job", "slot", "trigger", "planned_at"}], "next_cursor",
/// "total"}`; `limit` 1–500, default 100). Each run's counts and receipts are at
/// `GET /api/v1/runs/{run_id}`.
pub async fn list_runs(
    State(state): State<Arc<AppState>>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let store = state.store.clone();
    let job = query.job.clone().filter(|j| !j.is_empty());
    let runs = blocking(move || store.runs(job.as_deref())).await?;
    let page_query = super::paging::PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let key = |r: &crate::store::RunRecord| {
        format!(
            "{:020}|{}",
            r.planned_at.timestamp_micros().max(0),
            r.run_id
        )
    };
    let page = super::paging::page_descending(runs, key, &page_query)?;
    Ok(Json(serde_json::json!({
        "runs": page.items,
        "next_cursor": page.next_cursor,
        "total": page.total,
    }))
    .into_response())
}

/// Which receipts `GET /api/v1/runs/{run_id}` returns.
#[derive(Deserialize)]
pub struct RunQuery {
    /// Only receipts in this state (`failed`, `pending`, …).
    state: Option<OutboxState>,
    /// Receipts after this one (the `receipts_next` of the previous page).
    after: Option<u64>,
    /// At most this many receipts (default 1,000, at most 10,000).
    limit: Option<usize>,
}

/// `GET /api/v1/runs/{run_id}?state=&after=&limit=`: a run's progress — counts over all its
/// sends (planned = delivered + failed + skipped + timed_out + pending + awaiting_confirmation,
/// the last for customer groups whose owners have not sent their mass-send task yet) and a page
/// of receipts,
/// one per group, with `receipts_next` to ask for the next page (`null` on the last).
pub async fn get_run(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<RunQuery>,
) -> Response {
    let store = state.store.clone();
    let id = run_id.clone();
    let page = crate::store::ReceiptPage {
        state: query.state,
        after: query.after,
        limit: query.limit.unwrap_or(1000).clamp(1, 10_000),
    };
    let report = match blocking(move || store.run_report(&id, &page)).await {
        Ok(Some(report)) => report,
        Ok(None) => return ApiError::not_found(format!("no run {run_id:?}")).into_response(),
        Err(e) => return e.into_response(),
    };
    let (record, counts) = (&report.record, report.counts);
    Json(serde_json::json!({
        "run_id": record.run_id,
        "job": record.job,
        "slot": record.slot,
        "trigger": record.trigger,
        "state": if counts.pending == 0 && counts.awaiting_confirmation == 0 { "done" } else { "running" },
        "planned": counts.planned,
        "delivered": counts.delivered,
        "failed": counts.failed,
        "skipped": counts.skipped,
        "timed_out": counts.timed_out,
        "pending": counts.pending,
        "awaiting_confirmation": counts.awaiting_confirmation,
        "receipts": report.receipts.iter().map(|r| serde_json::json!({
            "group": r.chat.as_ref().map(ToString::to_string),
            "state": r.state,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "created_at": r.created_at,
        })).collect::<Vec<_>>(),
        "receipts_next": report.next,
    }))
    .into_response()
}
