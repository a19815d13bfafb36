//! What the load runs over one connection (`onebot`, `aibot`) share: their command-line
//! arguments, waiting for the last replies, and the report — throughput, latency percentiles
//! over the measured window, and the process's memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Args {
    pub rate: u64,
    pub seconds: u64,
    pub warmup_seconds: u64,
    pub groups: usize,
    /// The fake peer answers this late (a slow peer); only runs that have one read it.
    pub ack_delay_ms: u64,
}

/// `--rate`, `--seconds`, `--warmup-seconds`, `--groups`, `--ack-delay-ms`; anything else
/// (`cargo bench` passes `--bench`) is ignored.
pub fn args() -> Args {
    let mut args = Args {
        rate: 2000,
        seconds: 10,
        warmup_seconds: 2,
        groups: 200,
        ack_delay_ms: 0,
    };
    let raw: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < raw.len() {
        let value = raw.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (raw[i].as_str(), value) {
            ("--rate", Some(v)) => args.rate = v.max(1),
            ("--seconds", Some(v)) => args.seconds = v.max(1),
            ("--warmup-seconds", Some(v)) => args.warmup_seconds = v,
            ("--groups", Some(v)) => args.groups = v.max(1) as usize,
            ("--ack-delay-ms", Some(v)) => args.ack_delay_ms = v,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

/// What one run sent and got back.
pub struct Run<'a> {
    /// What was sent (`events`, `callbacks`) and what answers them (`send_message`, …).
    pub sent_what: &'a str,
    pub reply_what: &'a str,
    pub total: u64,
    pub started: Instant,
    pub sending_took: Duration,
    /// Each reply's send instant and latency, as the run recorded them.
    pub latencies: Arc<Mutex<Vec<(Instant, Duration)>>>,
    pub unmatched: u64,
}

/// Waits up to 10 s for the last replies, prints the report, and fails when fewer replies to the
/// measured window came than were sent in it.
pub async fn finish(run: Run<'_>, args: &Args) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if run.latencies.lock().unwrap().len() as u64 >= run.total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let measure_from = run.started + Duration::from_secs(args.warmup_seconds);
    let all = run.latencies.lock().unwrap().clone();
    let mut measured: Vec<Duration> = all
        .iter()
        .filter(|(at, _)| *at >= measure_from)
        .map(|(_, d)| *d)
        .collect();
    measured.sort();
    let expected = args.rate * args.seconds;
    let (total, what) = (run.total, run.sent_what);
    println!(
        "{what} sent: {total} in {:.2} s ({:.0}/s offered; {expected} measured after a {} s warm-up)",
        run.sending_took.as_secs_f64(),
        total as f64 / run.sending_took.as_secs_f64(),
        args.warmup_seconds
    );
    println!(
        "replies received: {} of {total} ({} unmatched)",
        all.len(),
        run.unmatched
    );
    println!(
        "{what} → {} latency (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        run.reply_what,
        percentile(&measured, 50.0),
        percentile(&measured, 90.0),
        percentile(&measured, 99.0),
        percentile(&measured, 99.9),
        percentile(&measured, 100.0),
    );
    // Server and client share the process: the client's own bookkeeping (a latency per
    // message) is included, so the server's share is below these.
    println!(
        "process RSS after {total} {what}: {:.1} MiB now, {:.1} MiB peak (server and client together)",
        own_mib("VmRSS"),
        own_mib("VmHWM")
    );
    if (measured.len() as u64) < expected {
        return Err(format!(
            "only {} of {expected} measured {what} were answered",
            measured.len()
        ));
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// A `/proc/self/status` memory field (`VmRSS`, `VmHWM`) in MiB; NaN where there is none.
pub fn own_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':').map(str::trim))
                .and_then(|kib| kib.trim_end_matches(" kB").parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
