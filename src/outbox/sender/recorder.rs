//! The sender's two helpers: the waker that starts parked lanes when their next send is due,
//! and the recorder that writes outcomes to the store in batches.

use super::*;

/// Starts parked lanes when they become due. Ends with the outbox or at shutdown.
pub(super) async fn run_waker(inner: Weak<Inner>, wake: Arc<Notify>, closing: CancellationToken) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner.start_ready();
            let lanes = inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes.next_due()
        };
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = due => {}
            () = wake.notified() => {}
            () = closing.cancelled() => return,
        }
    }
}

/// Writes outcomes and each lane's attempts in batches: one commit for whatever has arrived.
pub(super) async fn run_recorder(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Record>,
    window: Duration,
    keep: usize,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let mut outcomes = Vec::new();
        let mut attempts: HashMap<String, Vec<i64>> = HashMap::new();
        let mut flushes = Vec::new();
        for record in batch.drain(..) {
            match record {
                Record::Outcome(o) => outcomes.push(o),
                Record::Attempt { lane, at_ms } => attempts.entry(lane).or_default().push(at_ms),
                Record::Flush(done) => flushes.push(done),
            }
        }
        if !outcomes.is_empty() || !attempts.is_empty() {
            write_outcomes(&store, outcomes, attempts, window, keep).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

pub(super) async fn write_outcomes(
    store: &Store,
    outcomes: Vec<SendOutcome>,
    attempts: HashMap<String, Vec<i64>>,
    window: Duration,
    keep: usize,
) {
    let outcomes = Arc::new(outcomes);
    let attempts = Arc::new(attempts);
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=4 {
        let store = store.clone();
        let (batch, lanes) = (Arc::clone(&outcomes), Arc::clone(&attempts));
        let result = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let now = Utc::now();
                for outcome in batch.iter() {
                    tx.record_send(outcome, now)?;
                }
                let since_ms = now.timestamp_millis() - window.as_millis() as i64;
                for (lane, times) in lanes.iter() {
                    tx.note_send_times(lane, times, since_ms, keep)?;
                }
                Ok(())
            })
        })
        .await;
        match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => warn!(error = %e, attempt, "could not record send outcomes; retrying"),
            Err(e) => warn!(error = %e, attempt, "outcome task failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay *= 4;
    }
    error!(
        outcomes = outcomes.len(),
        "send outcomes not recorded: the store kept failing; these sends stay pending and are sent again after a restart"
    );
}
