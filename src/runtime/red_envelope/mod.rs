//! Red-envelope tests while they run. Starting one (an admin's command, the admin API, a
//! schedule) stores the test and queues the envelope in one transaction. A member's message that
//! is the claim phrase takes the next share — first come, first served, one per member — and the
//! share is in the store before the member is answered. When the envelope is empty or its window
//! ends, the test is finished: results computed and stored, the group told, the admins sent the
//! report, again in one transaction with the posts, so a crash cannot finish a test twice or
//! lose its report. Running tests are reloaded at start-up; [`Envelopes::run`] is the timer that
//! finishes them (also those whose window ended while the service was down).
//!
//! The pure rules (split, claim, results) are in [`crate::engine::red_envelope`]; the ledger's
//! tables in [`crate::store`]. Here: starting a test and the timer; in [`claims`] members'
//! claims and grabs, in [`finish`] cancelling and finishing, in [`schedule`] scheduled tests.

mod claims;
mod finish;
mod schedule;
#[cfg(test)]
mod tests;
mod texts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use minijinja::context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::domain::{ChatId, EnvelopeParams, Event, OutMessage, Reply, Role, Sender};
use crate::engine::Scripts;
use crate::engine::message::Message;
use crate::engine::red_envelope::rules::EnvelopeMessages;
use crate::engine::red_envelope::{self as rules, Claim, ClaimOutcome};
use crate::engine::{self, normalize};
use crate::runtime::alerts::Alerts;
use crate::runtime::groups::Directory;
use crate::scripts::live::LiveScripts;
use crate::store::{
    ClaimRecord, ClaimVia, GroupStatus, NewSend, OutboxEntry, Store, StoreError, TestRecord,
    TestState,
};

pub use texts::verdict_text;

/// How long a finished test still answers its phrase ("this envelope has ended").
pub const LATE_ANSWERS_FOR: Duration = Duration::from_secs(24 * 3600);
/// Characters a claim may have besides the phrase (`抢 财税好运 527`, `谢谢老板`): enough for a
/// word of thanks, too few to carry an advert, so that claims can skip moderation.
pub const CLAIM_SLACK_CHARS: usize = 4;
/// The wait before trying again to finish a test the store would not record.
const FINISH_RETRY: Duration = Duration::from_secs(5);
/// The longest the timer sleeps, so that edited schedules are picked up.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// The time, as the service sees it (tests drive it from tokio's paused clock).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
/// Hands a queued post to the outbox.
pub type Dispatch = Arc<dyn Fn(OutboxEntry) + Send + Sync>;

/// Why a test did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("unknown group")]
    UnknownGroup,
    #[error("the bot has not adopted this group")]
    NotAdopted,
    #[error("test {id} is still running in this group")]
    Running { id: String },
    /// A scheduled test with this id was started before (a slot handled twice).
    #[error("test {0} was started already")]
    Duplicate(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the envelope cannot be posted: {0}")]
    NoDestination(String),
    /// A push-only group (adopted by its webhook URL): members' messages never reach the bot,
    /// so nobody could claim.
    #[error(
        "the group is push-only: members' messages do not reach the bot, so nobody could claim"
    )]
    Unheard,
    #[error("the envelope did not render: {0}")]
    Template(String),
    #[error("a background task failed: {0}")]
    Task(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl StartError {
    /// The reason in the members' words (the answer to a command).
    pub fn chinese(&self) -> String {
        match self {
            StartError::UnknownGroup | StartError::NotAdopted => "机器人还没有认领这个群".into(),
            StartError::Running { .. } | StartError::Duplicate(_) => {
                "群里还有一个红包测试没结束".into()
            }
            StartError::Invalid(reason) => reason.clone(),
            StartError::NoDestination(_) => "机器人现在不能在这个群里发消息".into(),
            StartError::Unheard => "机器人收不到这个群的消息，没法抢红包".into(),
            StartError::Template(_) | StartError::Task(_) | StartError::Store(_) => {
                "系统出了点问题，请稍后再试".into()
            }
        }
    }
}

/// How long the announcement of an envelope emptied by a claim waits, so that the last claimer's
/// 「抢到」 (the answer to the claim, sent once the claim is committed) comes before 「红包已抢完」.
const LAST_CLAIM_FIRST: chrono::TimeDelta = chrono::TimeDelta::seconds(3);

/// Who cancels the test of a group the bot left or was released from.
pub const RELEASED_BY: &str = "release";

/// Which test to cancel.
#[derive(Debug, Clone)]
pub enum TestRef {
    Id(String),
    /// The one running in this group.
    Chat(ChatId),
}

/// Why a test was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such red-envelope test")]
    UnknownTest,
    #[error("no red-envelope test is running in this group")]
    NothingRunning,
    #[error("the test is not running: it is {}", .0.as_str())]
    NotRunning(TestState),
    #[error("store: {0}")]
    Store(StoreError),
}

/// A test that is running, as the claim path needs it.
struct Running {
    test: TestRecord,
    split: Vec<u64>,
    claims: Vec<ClaimRecord>,
    /// Finished (or being finished): claims that got here late are answered as closed.
    done: bool,
}

impl Running {
    /// What `user` claiming at `now` would get.
    fn claim_by(&self, user: &str, now: DateTime<Utc>) -> ClaimOutcome {
        let earlier: Vec<Claim> = self.claims.iter().map(engine_claim).collect();
        rules::claim(
            &self.split,
            &earlier,
            user,
            now,
            self.test.started_at,
            self.test.ends_at,
        )
    }
}

/// The test a message claims ([`Envelopes::claim_target`]).
pub struct ClaimTarget {
    chat: ChatId,
    /// `None` once the test has finished (the claim is late).
    running: Option<Arc<tokio::sync::Mutex<Running>>>,
}

/// A group's running test, findable without waiting for its lock.
struct Slot {
    id: String,
    phrase_key: String,
    ends_at: DateTime<Utc>,
    test: Arc<tokio::sync::Mutex<Running>>,
}

/// A test finished recently, kept to answer late claims.
struct Closed {
    phrase_key: String,
    finished_at: DateTime<Utc>,
    claimed: HashMap<String, u64>,
    emptied: bool,
    /// Cancelled before its window ended: claims are answered with `[messages.cancelled]`.
    cancelled: bool,
    test: TestRecord,
}

/// The running tests and what they need.
pub struct Envelopes {
    store: Store,
    scripts: Arc<LiveScripts>,
    directory: Arc<Directory>,
    webhook_hosts: Vec<String>,
    alerts: Alerts,
    dispatch: Dispatch,
    clock: Clock,
    running: Mutex<HashMap<ChatId, Slot>>,
    closed: Mutex<HashMap<ChatId, Closed>>,
    wake: Notify,
}

/// What the service needs from the rest of the process.
pub struct EnvelopeDeps {
    pub store: Store,
    pub scripts: Arc<LiveScripts>,
    pub directory: Arc<Directory>,
    pub webhook_hosts: Vec<String>,
    /// Where the results report goes (not to the group: its verdict is for the operators).
    pub alerts: Alerts,
    pub dispatch: Dispatch,
    pub clock: Clock,
}

/// The form a phrase is compared in: normalised (width, case, traditional characters) and
/// squeezed (no spaces or punctuation), so `财税好运527` and `財稅好運 ５２７！` both claim.
fn phrase_key(text: &str) -> String {
    normalize::squeeze(&normalize::normalize(text))
}

/// Whether `text` (in compared form) claims with `phrase_key`.
fn is_claim_of(text_key: &str, phrase_key: &str) -> bool {
    !phrase_key.is_empty()
        && text_key.contains(phrase_key)
        && text_key.chars().count() <= phrase_key.chars().count() + CLAIM_SLACK_CHARS
}

impl Envelopes {
    /// Loads the running tests (and those finished within [`LATE_ANSWERS_FOR`]) from the store.
    pub fn load(deps: EnvelopeDeps) -> Result<Envelopes, StoreError> {
        let now = (deps.clock)();
        let since = now - chrono::Duration::from_std(LATE_ANSWERS_FOR).unwrap_or_default();
        let mut running = HashMap::new();
        let mut closed = HashMap::new();
        let mut tests = deps.store.live_envelope_tests(since)?;
        tests.sort_by_key(|t| t.started_at);
        for test in tests {
            let claims = deps.store.envelope_claims(&test.id)?;
            let phrase_key = phrase_key(&test.claim_phrase);
            match test.state {
                TestState::Running => {
                    let split = match rules::split(test.total_fen, test.shares, test.seed) {
                        Ok(split) => split,
                        Err(e) => {
                            error!(test = %test.id, error = %e, "a stored test cannot be split; left as it is");
                            continue;
                        }
                    };
                    info!(test = %test.id, chat = %test.chat_id, claims = claims.len(), "red-envelope test resumed");
                    running.insert(
                        test.chat_id.clone(),
                        Slot {
                            id: test.id.clone(),
                            phrase_key,
                            ends_at: test.ends_at,
                            test: Arc::new(tokio::sync::Mutex::new(Running {
                                test,
                                split,
                                claims,
                                done: false,
                            })),
                        },
                    );
                }
                TestState::Finished | TestState::Cancelled => {
                    closed.insert(test.chat_id.clone(), closed_of(&test, &claims, phrase_key));
                }
            }
        }
        Ok(Envelopes {
            store: deps.store,
            scripts: deps.scripts,
            directory: deps.directory,
            webhook_hosts: deps.webhook_hosts,
            alerts: deps.alerts,
            dispatch: deps.dispatch,
            clock: deps.clock,
            running: Mutex::new(running),
            closed: Mutex::new(closed),
            wake: Notify::new(),
        })
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The id of the test running in `chat`, if any.
    #[cfg(test)]
    fn running_in(&self, chat: &ChatId) -> Option<String> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.get(chat).map(|slot| slot.id.clone())
    }

    /// Starts a test in `chat`; `params` left out take the defaults of `red_envelope.toml`.
    pub async fn start(
        &self,
        chat: &ChatId,
        params: EnvelopeParams,
        started_by: &str,
    ) -> Result<TestRecord, StartError> {
        self.start_as(chat, params, started_by, None).await
    }

    /// [`Self::start`] under a chosen id (a schedule's slot in a group): refused as a duplicate
    /// when a test with that id exists, so that a slot handled twice starts nothing twice.
    async fn start_as(
        &self,
        chat: &ChatId,
        params: EnvelopeParams,
        started_by: &str,
        fixed_id: Option<String>,
    ) -> Result<TestRecord, StartError> {
        let now = self.now();
        let scripts = self.scripts.current();
        let defaults = &scripts.red_envelope;
        let messages = defaults
            .messages
            .as_ref()
            .ok_or_else(|| StartError::Template("no red-envelope messages are loaded".into()))?;
        let total_fen = params.total_fen.unwrap_or(defaults.total_fen);
        let shares = params.shares.unwrap_or(defaults.shares);
        let window_secs = params.window_secs.unwrap_or(defaults.window.as_secs());
        crate::engine::red_envelope::rules::check_test(
            total_fen,
            shares,
            Duration::from_secs(window_secs),
        )
        .map_err(StartError::Invalid)?;
        let group = self.startable_group(chat, fixed_id.clone()).await?;
        let to = crate::outbox::group_destination(&group, &self.webhook_hosts)
            .map_err(StartError::NoDestination)?;
        let seed: u64 = rand::random();
        let split = rules::split(total_fen, shares, seed)
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        let test = TestRecord {
            id: fixed_id
                .unwrap_or_else(|| format!("rt-{}-{:08x}", now.format("%Y%m%d%H%M%S"), seed >> 32)),
            chat_id: chat.clone(),
            total_fen,
            shares,
            window_secs,
            seed,
            claim_phrase: rules::claim_phrase(&defaults.claim_words, seed),
            started_at: now,
            ends_at: now + chrono::Duration::seconds(window_secs as i64),
            started_by: started_by.to_owned(),
            state: TestState::Running,
            finished_at: None,
            results: None,
            posted_at: None,
            cancelled_by: None,
        };
        let envelope = texts::envelope(&test, group.account.is_none());
        let post = self
            .render_post(&scripts, &messages.envelope, chat, context! { envelope })
            .map_err(StartError::Template)?;
        // Claim the group's slot before writing, so that two starts at once cannot both run.
        self.claim_slot(chat, &test, split)?;
        let send = NewSend {
            key: crate::store::envelope_post_key(&test.id),
            chat: Some(chat.clone()),
            bot: Some(group.bot.clone()),
            to,
            message: post,
            purpose: "red_envelope".into(),
            run: None,
            not_before: None,
            skip: None,
        };
        self.store_and_post(&test, send, now).await?;
        info!(test = %test.id, chat = %chat, total_fen, shares, window_secs, by = started_by,
            phrase = %test.claim_phrase, "red-envelope test started");
        self.wake.notify_one();
        Ok(test)
    }

    /// The group a test may start in: adopted, heard (not push-only), with no test under
    /// `fixed_id` already.
    async fn startable_group(
        &self,
        chat: &ChatId,
        fixed_id: Option<String>,
    ) -> Result<crate::store::GroupRecord, StartError> {
        let store = self.store.clone();
        let key = chat.clone();
        let (group, earlier) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let earlier = match &fixed_id {
                Some(id) => store.envelope_test(id)?,
                None => None,
            };
            Ok((store.group(&key)?, earlier))
        })
        .await
        .map_err(|e| StartError::Task(e.to_string()))??;
        if let Some(earlier) = earlier {
            return Err(StartError::Duplicate(earlier.id));
        }
        let group = group.ok_or(StartError::UnknownGroup)?;
        if group.status != GroupStatus::Adopted {
            return Err(StartError::NotAdopted);
        }
        if group.is_push_only() {
            return Err(StartError::Unheard);
        }
        Ok(group)
    }

    /// Takes the group's one running slot for `test` (shares `split`), or says which test has it.
    fn claim_slot(
        &self,
        chat: &ChatId,
        test: &TestRecord,
        split: Vec<u64>,
    ) -> Result<(), StartError> {
        let mut slots = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(chat) {
            return Err(StartError::Running {
                id: slot.id.clone(),
            });
        }
        let running = Arc::new(tokio::sync::Mutex::new(Running {
            test: test.clone(),
            split,
            claims: Vec::new(),
            done: false,
        }));
        slots.insert(
            chat.clone(),
            Slot {
                id: test.id.clone(),
                phrase_key: phrase_key(&test.claim_phrase),
                ends_at: test.ends_at,
                test: running,
            },
        );
        Ok(())
    }

    /// Stores `test` and queues its envelope post in one transaction; the group's slot is given
    /// back when that fails.
    async fn store_and_post(
        &self,
        test: &TestRecord,
        send: NewSend,
        now: DateTime<Utc>,
    ) -> Result<(), StartError> {
        let store = self.store.clone();
        let record = test.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                tx.put_envelope_test(&record)?;
                tx.enqueue(send, now)
            })
        })
        .await;
        let entry = match written {
            Ok(Ok(entry)) => entry,
            Ok(Err(e)) => {
                self.running_remove(&test.chat_id);
                return Err(StartError::Store(e));
            }
            Err(e) => {
                self.running_remove(&test.chat_id);
                return Err(StartError::Task(e.to_string()));
            }
        };
        if let Some(entry) = entry {
            (self.dispatch)(entry);
        }
        Ok(())
    }

    fn running_remove(&self, chat: &ChatId) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(chat);
    }

    /// The timer: starts scheduled tests at their slots and finishes tests when their window
    /// ends, until `stop` says so.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let next_slot = self.run_schedules().await;
            let failed = self.finish_due().await;
            let now = self.now();
            let next_end = self
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .map(|s| s.ends_at)
                .min();
            let next = [next_end, next_slot].into_iter().flatten().min();
            // Edited schedules are picked up within MAX_SLEEP.
            let mut sleep = next.map_or(MAX_SLEEP, |at| {
                (at - now).to_std().unwrap_or_default().min(MAX_SLEEP)
            });
            if failed > 0 {
                sleep = sleep.max(FINISH_RETRY);
            }
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake.notified() => {}
                () = stop.cancelled() => break,
            }
        }
        let left = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if left > 0 {
            info!(
                tests = left,
                "red-envelope tests still running; finished after the restart"
            );
        }
    }
}

fn engine_claim(c: &ClaimRecord) -> Claim {
    Claim {
        user_id: c.user_id.clone(),
        amount_fen: c.amount_fen,
        at: c.at,
    }
}

fn closed_of(test: &TestRecord, claims: &[ClaimRecord], phrase_key: String) -> Closed {
    Closed {
        phrase_key,
        finished_at: test.finished_at.unwrap_or(test.ends_at),
        claimed: claims
            .iter()
            .map(|c| (c.user_id.clone(), c.amount_fen))
            .collect(),
        emptied: claims.len() >= test.shares as usize,
        cancelled: test.state == TestState::Cancelled,
        test: test.clone(),
    }
}

/// `text` headed by the group's name where the operator gave one (the alert adds the id).
fn with_group_name(settings: &crate::domain::GroupSettings, text: &str) -> String {
    match settings.name.trim() {
        "" => text.to_owned(),
        name => format!("群「{name}」\n{text}"),
    }
}
