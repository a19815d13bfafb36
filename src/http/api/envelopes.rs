//! Red-envelope tests through the admin API: starting one
//! (`POST /api/v1/groups/{chat_id}/red-envelope-tests`), a group's tests, one test with its
//! claims and results (`GET /api/v1/red-envelope-tests/{id}`), cancelling a running one
//! (`…/cancel`), and the payout ledger as CSV (`…/claims.csv`).

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::paging::{PageQuery, page_descending};
use super::{ApiError, admit, bad_request, blocking, internal_error};
use crate::domain::{ChatId, EnvelopeParams};
use crate::engine::red_envelope::{Results, Verdict, yuan_digits};
use crate::runtime::red_envelope::{CancelError, StartError, TestRef};
use crate::store::{ClaimRecord, ClaimVia, StoreError, TestRecord};

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v1/groups/{chat_id}/red-envelope-tests",
            get(list_of_group).post(start),
        )
        .route("/api/v1/red-envelope-schedules", get(list_schedules))
        .route("/api/v1/red-envelope-tests", get(list_recent))
        .route("/api/v1/red-envelope-tests/{id}", get(get_test))
        .route(
            "/api/v1/red-envelope-tests/{id}/claims.csv",
            get(claims_csv),
        )
        .route("/api/v1/red-envelope-tests/{id}/cancel", post(cancel))
}

fn refuse(status: StatusCode, reason: String) -> Response {
    ApiError::new(status, reason).into_response()
}

/// `POST /api/v1/groups/{chat_id}/red-envelope-tests` with `{"total_fen", "shares",
/// "window_secs"}` (each optional: `red_envelope.toml`'s defaults): 201 with the test (its `id`
/// and `claim_phrase`). 400 for impossible values, 404 for an unknown group, 409 when the group
/// is not adopted, cannot be posted to, is push-only (nobody could claim), or already runs a test
/// (`running_id`).
pub async fn start(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<super::Caller>,
    Path(chat_id): Path<String>,
    body: Result<Json<EnvelopeParams>, JsonRejection>,
) -> Response {
    let params = match admit(body) {
        Ok(params) => params,
        Err(refusal) => return *refusal,
    };
    let chat = ChatId::new(chat_id);
    match state.envelopes.start(&chat, params, &caller.by()).await {
        Ok(test) => (StatusCode::CREATED, Json(test)).into_response(),
        Err(StartError::Invalid(reason)) => bad_request(reason),
        Err(StartError::UnknownGroup) => refuse(StatusCode::NOT_FOUND, format!("no group {chat}")),
        Err(StartError::Running { id } | StartError::Duplicate(id)) => {
            ApiError::conflict(format!("test {id} is still running in this group"))
                .with("running_id", id)
                .into_response()
        }
        Err(e @ (StartError::NotAdopted | StartError::NoDestination(_) | StartError::Unheard)) => {
            refuse(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => internal_error(e),
    }
}

/// `GET /api/v1/red-envelope-schedules`: the schedules of `red_envelope.toml` with the values
/// their tests get and the next three slots.
pub async fn list_schedules(State(state): State<Arc<AppState>>) -> Response {
    let scripts = state.scripts.current();
    let defaults = &scripts.red_envelope;
    let now = chrono::Utc::now();
    let schedules: Vec<serde_json::Value> = defaults
        .schedules
        .iter()
        .map(|s| {
            let mut next = Vec::new();
            let mut at = now;
            while next.len() < 3 {
                let Some(slot) = s.next_slot(at) else { break };
                next.push(slot.with_timezone(&s.timezone).to_rfc3339());
                at = slot;
            }
            serde_json::json!({
                "name": s.name,
                "cron": s.cron_text,
                "timezone": s.timezone.name(),
                "targets": super::jobs::targets_view(&s.targets),
                "total_fen": s.params.total_fen.unwrap_or(defaults.total_fen),
                "shares": s.params.shares.unwrap_or(defaults.shares),
                "window_secs": s.params.window_secs.unwrap_or(defaults.window.as_secs()),
                "catch_up_within_minutes": s.catch_up_within.as_secs() / 60,
                "enabled": s.enabled,
                "next": next,
            })
        })
        .collect();
    Json(schedules).into_response()
}

/// A test as the API shows it: the record, its claims, and what they add up to.
#[derive(Serialize)]
pub struct TestView {
    #[serde(flatten)]
    test: TestRecord,
    claims: Vec<ClaimView>,
    claimed_fen: u64,
    /// `null` while the test runs.
    verdict: Option<Verdict>,
}

#[derive(Serialize)]
struct ClaimView {
    share: usize,
    user_id: String,
    name: String,
    amount_fen: u64,
    at: chrono::DateTime<chrono::Utc>,
    spoke_before: bool,
    via: ClaimVia,
}

impl TestView {
    fn new(test: TestRecord, claims: Vec<ClaimRecord>) -> Self {
        let claimed_fen = claims.iter().map(|c| c.amount_fen).sum();
        let verdict = test.results.as_ref().map(|r: &Results| r.verdict);
        let claims = claims
            .into_iter()
            .enumerate()
            .map(|(share, c)| ClaimView {
                share,
                user_id: c.user_id,
                name: c.name,
                amount_fen: c.amount_fen,
                at: c.at,
                spoke_before: c.spoke_before,
                via: c.via,
            })
            .collect();
        Self {
            test,
            claims,
            claimed_fen,
            verdict,
        }
    }
}

/// Reads a test and its claims; `None` when there is no such test.
async fn load(
    state: &AppState,
    id: String,
) -> Result<Option<(TestRecord, Vec<ClaimRecord>)>, Response> {
    let store = state.store.clone();
    blocking(move || -> Result<_, StoreError> {
        let Some(mut test) = store.envelope_test(&id)? else {
            return Ok(None);
        };
        // A running test shows its post's delivery as soon as it is recorded.
        if test.posted_at.is_none() {
            test.posted_at = store.envelope_posted_at(&id)?;
        }
        let claims = store.envelope_claims(&id)?;
        Ok(Some((test, claims)))
    })
    .await
    .map_err(IntoResponse::into_response)
}

/// `GET /api/v1/red-envelope-tests/{id}`: the test, its `claims` (share, member, amount_fen,
/// at), `claimed_fen` and `verdict` (`null` while it runs), and its `results` once finished.
pub async fn get_test(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match load(&state, id.clone()).await {
        Ok(Some((test, claims))) => Json(TestView::new(test, claims)).into_response(),
        Ok(None) => refuse(StatusCode::NOT_FOUND, format!("no red-envelope test {id}")),
        Err(response) => response,
    }
}

/// `POST /api/v1/red-envelope-tests/{id}/cancel`: stops a running test — stored as `cancelled`
/// (with `cancelled_by`), no results, the group told with `[messages.cancelled]`, later claims
/// answered that way. 200 with the test; 404 for an unknown test; 409 when it is not running.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<super::Caller>,
    Path(id): Path<String>,
) -> Response {
    match state
        .envelopes
        .cancel(&TestRef::Id(id.clone()), &caller.by(), true)
        .await
    {
        Ok(test) => Json(test).into_response(),
        Err(CancelError::UnknownTest | CancelError::NothingRunning) => {
            refuse(StatusCode::NOT_FOUND, format!("no red-envelope test {id}"))
        }
        Err(CancelError::NotRunning(state)) => refuse(
            StatusCode::CONFLICT,
            format!("test {id} is not running: it is {}", state.as_str()),
        ),
        Err(CancelError::Store(e)) => internal_error(e),
    }
}

/// `GET /api/v1/red-envelope-tests?limit=&cursor=`: every group's tests, newest start first, a
/// page at a time (without their claims; each with its group's `group_name`):
/// `{"tests", "next_cursor"}`.
pub async fn list_recent(
    State(state): State<Arc<AppState>>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit()?;
    let before = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(
            cursor
                .split_once('|')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("cursor {cursor:?} is not one of ours"))
                })?,
        ),
    };
    let store = state.store.clone();
    let tests = blocking(move || {
        let before = before.as_ref().map(|(at, id)| (*at, id.as_str()));
        store.recent_envelope_tests(before, limit + 1)
    })
    .await?;
    let (tests, next_cursor) = super::paging::trim_page(tests, limit, |t| {
        format!("{}|{}", t.started_at.timestamp_micros(), t.id)
    });
    let tests: Vec<serde_json::Value> = tests
        .into_iter()
        .map(|test| {
            let name = state.directory.get(&test.chat_id).name.clone();
            let mut value = serde_json::to_value(&test).unwrap_or_default();
            value["group_name"] = name.into();
            value
        })
        .collect();
    Ok(Json(serde_json::json!({"tests": tests, "next_cursor": next_cursor})).into_response())
}

/// `GET /api/v1/groups/{chat_id}/red-envelope-tests`: the group's tests, newest first (without
/// their claims).
pub async fn list_of_group(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let store = state.store.clone();
    let chat = ChatId::new(chat_id);
    let tests = blocking(move || store.envelope_tests_of(&chat)).await?;
    // Newest first: the key sorts by start time, then id.
    let key = |t: &TestRecord| format!("{:020}-{}", t.started_at.timestamp_micros().max(0), t.id);
    let mut page = page_descending(tests.into_iter().rev(), key, &query)?;
    let store = state.store.clone();
    let mut tests = std::mem::take(&mut page.items);
    let tests = blocking(move || {
        for test in tests.iter_mut().filter(|t| t.posted_at.is_none()) {
            test.posted_at = store.envelope_posted_at(&test.id)?;
        }
        Ok(tests)
    })
    .await?;
    Ok(Json(serde_json::json!({
        "tests": tests,
        "next_cursor": page.next_cursor,
        "total": page.total,
    }))
    .into_response())
}

/// `GET /api/v1/red-envelope-tests/{id}/claims.csv`: the payout ledger, one row per share
/// taken, UTF-8 with a byte-order mark (so that Excel shows the names).
pub async fn claims_csv(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let (test, claims) = match load(&state, id.clone()).await {
        Ok(Some(found)) => found,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, format!("no red-envelope test {id}")),
        Err(response) => return response,
    };
    let disposition = format!("attachment; filename=\"{}-claims.csv\"", test.id);
    // Read by operators in a spreadsheet: the group by name, times in the group's zone.
    let settings = state.directory.get(&test.chat_id);
    let zone = settings
        .timezone
        .as_deref()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        .unwrap_or(crate::engine::jobs::DEFAULT_TIMEZONE);
    let ledger = Ledger {
        test: &test,
        group_name: &settings.name,
        zone,
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        ledger.csv(&claims),
    )
        .into_response()
}

/// A test's payout ledger as CSV.
pub struct Ledger<'a> {
    pub test: &'a TestRecord,
    /// The group's name (empty when none is known).
    pub group_name: &'a str,
    /// The zone the claim times are written in (the group's, else the jobs' default).
    pub zone: chrono_tz::Tz,
}

impl Ledger<'_> {
    /// One row per share taken, with a header; times local to the ledger's zone, to the second.
    pub fn csv(&self, claims: &[ClaimRecord]) -> String {
        let mut out = format!(
            "{}test_id,chat_id,group,share,user_id,name,amount_fen,amount_yuan,claimed_at ({}),via\r\n",
            '\u{feff}',
            self.zone.name()
        );
        for (share, c) in claims.iter().enumerate() {
            let row = [
                self.test.id.clone(),
                self.test.chat_id.to_string(),
                self.group_name.to_owned(),
                share.to_string(),
                c.user_id.clone(),
                c.name.clone(),
                c.amount_fen.to_string(),
                yuan_digits(c.amount_fen),
                c.at.with_timezone(&self.zone)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
                c.via.as_str().to_owned(),
            ];
            let cells: Vec<String> = row.iter().map(|v| csv_cell(v)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// One CSV cell (RFC 4180 quoting). Member names are chosen by members: one that starts like a
/// formula (`=`, `+`, `-`, `@`) is prefixed with `'` so that a spreadsheet shows it rather than
/// running it.
fn csv_cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("张三"), "张三");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-5"), "'-5");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }
}
