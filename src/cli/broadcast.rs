//! `trumpet broadcast <job> [--dry-run] [--next] [--now]` and `trumpet broadcast --resend RUN`:
//! runs a scheduled job now (or sends a run again to the groups that did not get it) through
//! the running service's admin API and follows the run with a progress bar, or (`--dry-run`)
//! shows what a run would do, sending nothing. Inside the job's quiet hours the service refuses
//! unless `--now`. The service does the work; this command only asks and watches, so stopping
//! it (Ctrl-C) does not stop the run.

use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::service::{Api, BroadcastError, base_url};
use crate::config::Config;

/// How often the run is polled.
const POLL: Duration = Duration::from_millis(500);

/// What to ask the service for.
pub enum Request<'a> {
    /// Run `job` (its next slot with `next`), or only show what that would do.
    Job {
        job: &'a str,
        dry_run: bool,
        next: bool,
    },
    /// Send `run` again to the groups that did not get it.
    Resend { run: &'a str },
}

/// Runs the command; the exit code is 0 when every send was delivered or skipped on purpose,
/// 1 when some failed, 2 when the service could not be asked or refused (quiet hours without
/// `--now`, an unknown job or run). `now` overrides the job's quiet hours.
pub fn run(config: &Config, server: Option<&str>, request: Request<'_>, now: bool) -> ExitCode {
    let Some(token) = config.admin.token.as_ref().map(|t| t.expose().to_owned()) else {
        eprintln!(
            "error: admin.token is not set: the admin API refuses everyone (set it in trumpet.toml or TRUMPET_ADMIN__TOKEN)"
        );
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            eprintln!("error: cannot start an HTTP client: {e}");
            return ExitCode::from(2);
        }
    };
    let api = Api {
        http,
        base: base_url(config, server),
        token,
    };
    let result = runtime.block_on(async {
        let quiet = if now {
            "&override_quiet_hours=true"
        } else {
            ""
        };
        match request {
            Request::Job { job, dry_run, next } => {
                let slot = if next { "next" } else { "current" };
                if dry_run {
                    show_dry_run(&api, job, &format!("slot={slot}{quiet}")).await
                } else {
                    let path = format!("/api/v1/jobs/{job}/run?slot={slot}{quiet}");
                    follow_run(&api, &path).await
                }
            }
            Request::Resend { run } => {
                let quiet = if now {
                    "?override_quiet_hours=true"
                } else {
                    ""
                };
                follow_run(&api, &format!("/api/v1/runs/{run}/resend{quiet}")).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The text of a rendered message, for showing.
fn message_text(message: &Value) -> String {
    ["markdown", "text"]
        .iter()
        .find_map(|kind| message[kind]["content"].as_str())
        .map_or_else(|| message.to_string(), str::to_owned)
}

/// Groups shown by name in a summary line before "… and N more".
const GROUPS_SHOWN: usize = 10;

/// `ids` as one line: the first few, then how many more.
fn group_list(ids: &[&str]) -> String {
    let shown = ids
        .iter()
        .take(GROUPS_SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match ids.len().saturating_sub(GROUPS_SHOWN) {
        0 => shown,
        more => format!("{shown} … and {more} more"),
    }
}

/// A dry run as a summary: each distinct message once with the groups that would get it, and
/// the skipped groups by reason — not every group's copy of the same report.
async fn show_dry_run(api: &Api, job: &str, query: &str) -> Result<ExitCode, BroadcastError> {
    let path = format!("/api/v1/jobs/{job}/run?dry_run=true&{query}");
    let answer = api.call(reqwest::Method::POST, &path).await?;
    let targets = answer["targets"]
        .as_array()
        .ok_or_else(|| BroadcastError::Malformed(answer.to_string()))?;
    // In order of first appearance.
    let mut messages: Vec<(String, Vec<&str>)> = Vec::new();
    let mut skips: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut runs: Vec<&str> = Vec::new();
    for target in targets {
        let group = target["group"].as_str().unwrap_or("?");
        if let Some(run) = target["run_id"].as_str()
            && !runs.contains(&run)
        {
            runs.push(run);
        }
        match target["skip"].as_str() {
            Some(reason) => match skips.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, groups)) => groups.push(group),
                None => skips.push((reason, vec![group])),
            },
            None => {
                let text = message_text(&target["message"]).trim_end().to_owned();
                match messages.iter_mut().find(|(t, _)| *t == text) {
                    Some((_, groups)) => groups.push(group),
                    None => messages.push((text, vec![group])),
                }
            }
        }
    }
    let skipped: usize = skips.iter().map(|(_, groups)| groups.len()).sum();
    println!(
        "dry run of {job}: {} groups, {} would be sent, {skipped} skipped; nothing was sent",
        targets.len(),
        targets.len() - skipped
    );
    if !runs.is_empty() {
        println!("run: {}", runs.join(", "));
    }
    if let Some(refused) = answer["refused"].as_str() {
        println!("a run now would be refused and send nothing: {refused}");
    }
    for (n, (text, groups)) in messages.iter().enumerate() {
        println!(
            "\n── message {} of {}, to {} group(s): {}",
            n + 1,
            messages.len(),
            groups.len(),
            group_list(groups)
        );
        println!("{text}");
    }
    for (reason, groups) in &skips {
        println!(
            "\n── skipped, {} group(s): {reason}: {}",
            groups.len(),
            group_list(groups)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn count(run: &Value, key: &str) -> u64 {
    run[key].as_u64().unwrap_or(0)
}

/// Prints every receipt of `run_id` in `state`, a page at a time.
///
/// Only the receipts of sends planned at or after `since` (this request's), when given; returns
/// how many were printed.
async fn print_receipts(
    api: &Api,
    run_id: &str,
    state: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<u64, BroadcastError> {
    let mut after: Option<u64> = None;
    let mut printed = 0;
    loop {
        // The largest page: each page walks the whole run to count it.
        let mut path = format!("/api/v1/runs/{run_id}?state={state}&limit=10000");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let page = api.call(reqwest::Method::GET, &path).await?;
        for receipt in page["receipts"].as_array().into_iter().flatten() {
            let created = receipt["created_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if since.is_some_and(|since| created.is_none_or(|c| c < since)) {
                continue;
            }
            printed += 1;
            println!(
                "  {state} {}: {}",
                receipt["group"].as_str().unwrap_or("?"),
                receipt["last_error"].as_str().unwrap_or("")
            );
        }
        match page["receipts_next"].as_u64() {
            Some(next) => after = Some(next),
            None => return Ok(printed),
        }
    }
}

/// Asks for a run (`POST path`: a job's run, or a resend) and follows each of its runs to the end.
async fn follow_run(api: &Api, path: &str) -> Result<ExitCode, BroadcastError> {
    let answer = api.call(reqwest::Method::POST, path).await?;
    // A job's run answers `runs` (one per time zone); a resend, its `run_id`.
    let runs: Vec<String> = match answer["runs"].as_array() {
        Some(runs) => runs
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
        None => vec![
            answer["run_id"]
                .as_str()
                .ok_or_else(|| BroadcastError::Malformed(answer.to_string()))?
                .to_owned(),
        ],
    };
    // This request's sends carry `planned_at` or later; a slot's earlier sends (an earlier run
    // of the same slot) are not this run's, and neither are their failures.
    let queued = answer["queued"].as_u64().unwrap_or(0);
    let since = answer["planned_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    if queued == 0 {
        println!("nothing new to send: every group already had this slot");
    }
    let mut failed_total = 0;
    for run_id in runs {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(run_id.clone());
        let run = loop {
            // Counts only: the receipts that matter are read once the run is done.
            let run = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/runs/{run_id}?limit=1"),
                )
                .await?;
            bar.set_length(count(&run, "planned"));
            bar.set_position(count(&run, "planned") - count(&run, "pending"));
            bar.set_message(format!(
                "delivered {} · failed {} · skipped {} · timed out {} · pending {}",
                count(&run, "delivered"),
                count(&run, "failed"),
                count(&run, "skipped"),
                count(&run, "timed_out"),
                count(&run, "pending")
            ));
            if run["state"] == "done" {
                break run;
            }
            tokio::time::sleep(POLL).await;
        };
        bar.finish_and_clear();
        println!(
            "{run_id}: {} planned, {} delivered, {} failed, {} skipped, {} timed out",
            count(&run, "planned"),
            count(&run, "delivered"),
            count(&run, "failed"),
            count(&run, "skipped"),
            count(&run, "timed_out")
        );
        for state in ["failed", "skipped", "timed_out"] {
            if count(&run, state) > 0 {
                let now = print_receipts(api, &run_id, state, since).await?;
                if state == "failed" {
                    failed_total += now;
                    let earlier = count(&run, "failed") - now;
                    if earlier > 0 {
                        println!("  ({earlier} failed in an earlier run of this slot)");
                    }
                }
            }
        }
    }
    Ok(if failed_total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_group_lists_are_cut_after_ten() {
        assert_eq!(group_list(&["g1", "g2"]), "g1, g2");
        let ids: Vec<String> = (1..=13).map(|i| format!("g{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(
            group_list(&ids),
            "g1, g2, g3, g4, g5, g6, g7, g8, g9, g10 … and 3 more"
        );
    }
}
