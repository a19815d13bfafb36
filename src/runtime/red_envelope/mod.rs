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
//! tables in [`crate::store`].

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
        let store = self.store.clone();
        let key = chat.clone();
        let earlier_id = fixed_id.clone();
        let (group, earlier) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let earlier = match &earlier_id {
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
        let running = Arc::new(tokio::sync::Mutex::new(Running {
            test: test.clone(),
            split,
            claims: Vec::new(),
            done: false,
        }));
        // Claim the group's slot before writing, so that two starts at once cannot both run.
        {
            let mut slots = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = slots.get(chat) {
                return Err(StartError::Running {
                    id: slot.id.clone(),
                });
            }
            slots.insert(
                chat.clone(),
                Slot {
                    id: test.id.clone(),
                    phrase_key: phrase_key(&test.claim_phrase),
                    ends_at: test.ends_at,
                    test: running,
                },
            );
        }
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
                self.running_remove(chat);
                return Err(StartError::Store(e));
            }
            Err(e) => {
                self.running_remove(chat);
                return Err(StartError::Task(e.to_string()));
            }
        };
        if let Some(entry) = entry {
            (self.dispatch)(entry);
        }
        info!(test = %test.id, chat = %chat, total_fen, shares, window_secs, by = started_by,
            phrase = %test.claim_phrase, "red-envelope test started");
        self.wake.notify_one();
        Ok(test)
    }

    fn running_remove(&self, chat: &ChatId) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(chat);
    }

    /// The test `event` claims, when it is a claim of a test in its group (running, or finished
    /// recently): such a message is the phrase and at most a few characters more, so moderation
    /// can skip it. Hand it to [`Self::claim`].
    pub fn claim_target(&self, event: &Event) -> Option<ClaimTarget> {
        let chat = event.chat_id()?;
        // Most groups have no test: no need to normalise their messages.
        let has_test = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(chat)
            || self
                .closed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(chat);
        if !has_test {
            return None;
        }
        let text = engine::heard_text(event)?;
        let key = phrase_key(&text);
        if let Some(slot) = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(chat)
            .filter(|s| is_claim_of(&key, &s.phrase_key))
        {
            return Some(ClaimTarget {
                chat: chat.clone(),
                running: Some(Arc::clone(&slot.test)),
            });
        }
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        closed
            .get(chat)
            .filter(|c| is_claim_of(&key, &c.phrase_key))
            .map(|_| ClaimTarget {
                chat: chat.clone(),
                running: None,
            })
    }

    /// Handles `event`, a claim of `target`; returns the answer for the member.
    pub async fn claim(&self, event: &Event, target: ClaimTarget) -> Option<Reply> {
        let ClaimTarget { chat, running } = target;
        let now = self.now();
        let scripts = self.scripts.current();
        let messages = scripts.red_envelope.messages.as_ref()?;
        let user = event.from.user_id.as_str();
        let Some(running) = running else {
            return self.late_answer(&scripts, messages, &chat, &event.from);
        };
        let mut run = running.lock().await;
        if run.done {
            drop(run);
            return self.late_answer(&scripts, messages, &chat, &event.from);
        }
        let outcome = run.claim_by(user, now);
        let envelope = texts::envelope(&run.test, event.account.is_none());
        let reply = |message: &Message, extra: minijinja::Value| {
            self.render_reply(&scripts, message, &chat, &event.from, now, extra)
        };
        match outcome {
            ClaimOutcome::Claimed {
                index,
                amount_fen,
                left,
            } => {
                let record = match self
                    .record_claim(
                        &run.test,
                        index,
                        &event.from,
                        amount_fen,
                        ClaimVia::Phrase,
                        now,
                    )
                    .await
                {
                    Ok(record) => record,
                    Err(e) => {
                        error!(test = %run.test.id, user, error = %e, "claim not recorded");
                        return Some(Reply::Text {
                            content: "记账没有成功，请稍后再发一次口令。".into(),
                            mentioned: vec![user.to_owned()],
                        });
                    }
                };
                info!(test = %run.test.id, chat = %chat, user, index, amount_fen, left, "share claimed");
                run.claims.push(record);
                let answer = reply(
                    &messages.claimed,
                    context! { envelope, claim => texts::claim(amount_fen, left) },
                );
                if left == 0 {
                    // The announcement waits for this answer to reach the member first.
                    self.finish_locked(&mut run, now, now + LAST_CLAIM_FIRST)
                        .await;
                }
                answer
            }
            ClaimOutcome::AlreadyClaimed { amount_fen } => reply(
                &messages.already_claimed,
                context! { envelope, claim => texts::claim(amount_fen, run.split.len() - run.claims.len()) },
            ),
            ClaimOutcome::Empty => reply(&messages.empty, context! { envelope }),
            ClaimOutcome::Closed => reply(&messages.closed, context! { envelope }),
        }
    }

    /// The answer to a member whose start was refused.
    pub fn refusal(&self, event: &Event, error: &StartError) -> Option<Reply> {
        let chat = event.chat_id()?;
        let scripts = self.scripts.current();
        let messages = scripts.red_envelope.messages.as_ref()?;
        let reason = error.chinese();
        self.render_reply(
            &scripts,
            &messages.not_started,
            chat,
            &event.from,
            self.now(),
            context! { reason },
        )
    }

    /// The answer to an admin whose cancellation found nothing to cancel (or failed).
    pub fn cancel_refusal(&self, event: &Event, error: &CancelError) -> Option<Reply> {
        let content = match error {
            CancelError::Store(_) => "系统出了点问题，红包测试没有取消成功，请稍后再试。",
            _ => "群里没有正在进行的红包测试。",
        };
        Some(Reply::Text {
            content: content.into(),
            mentioned: vec![event.from.user_id.clone()],
        })
    }

    /// The answer to a claim of a finished test.
    fn late_answer(
        &self,
        scripts: &Scripts,
        messages: &EnvelopeMessages,
        chat: &ChatId,
        from: &Sender,
    ) -> Option<Reply> {
        let (message, extra) = {
            let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
            let c = closed.get(chat)?;
            let envelope = texts::envelope(&c.test, false);
            match c.claimed.get(&from.user_id) {
                _ if c.cancelled => (&messages.cancelled, context! { envelope }),
                Some(&amount) => (
                    &messages.already_claimed,
                    context! { envelope, claim => texts::claim(amount, 0) },
                ),
                None if c.emptied => (&messages.empty, context! { envelope }),
                None => (&messages.closed, context! { envelope }),
            }
        };
        self.render_reply(scripts, message, chat, from, self.now(), extra)
    }

    /// Records a member's grab of a real WeChat envelope the bot account posted as a claim of
    /// the group's running test (the amount WeChat gave, 0 when not reported). Grabs with no
    /// test running, after its window or beyond its shares, and a member's second grab, are
    /// logged and not recorded. True when recorded.
    pub async fn record_grab(&self, event: &Event, amount_fen: Option<u64>) -> bool {
        let Some(chat) = event.chat_id() else {
            return false;
        };
        let user = event.from.user_id.as_str();
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(chat)
            .map(|slot| Arc::clone(&slot.test));
        let Some(running) = running else {
            info!(chat = %chat, user, "a red-envelope grab with no test running: not recorded");
            return false;
        };
        let now = self.now();
        let mut run = running.lock().await;
        if run.done {
            info!(chat = %chat, user, "a red-envelope grab after the test ended: not recorded");
            return false;
        }
        // What the platform reports is not trusted further than the envelope holds: a grab of
        // more than is left is refused, and the totals cannot wrap.
        let amount = amount_fen.unwrap_or(0);
        let claimed = run
            .claims
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.amount_fen));
        let left_fen = run.test.total_fen.saturating_sub(claimed);
        if amount > left_fen {
            warn!(test = %run.test.id, chat = %chat, user, amount_fen = amount, left_fen,
                "a red-envelope grab reports more than the envelope has left: not recorded");
            return false;
        }
        let outcome = run.claim_by(user, now);
        let ClaimOutcome::Claimed { index, left, .. } = outcome else {
            info!(test = %run.test.id, user, outcome = ?outcome, "a red-envelope grab not recorded");
            return false;
        };
        let record = match self
            .record_claim(
                &run.test,
                index,
                &event.from,
                amount,
                ClaimVia::WechatEnvelope,
                now,
            )
            .await
        {
            Ok(record) => record,
            Err(e) => {
                error!(test = %run.test.id, user, error = %e, "grab not recorded");
                return false;
            }
        };
        info!(test = %run.test.id, chat = %chat, user, index, amount_fen = amount, left,
            "red-envelope grab recorded");
        run.claims.push(record);
        if left == 0 {
            self.finish_locked(&mut run, now, now).await;
        }
        true
    }

    /// Writes share `index` as taken by `from`, with what the results need to know of them.
    async fn record_claim(
        &self,
        test: &TestRecord,
        index: usize,
        from: &Sender,
        amount_fen: u64,
        via: ClaimVia,
        at: DateTime<Utc>,
    ) -> Result<ClaimRecord, StoreError> {
        let store = self.store.clone();
        let (test_id, chat, from) = (test.id.clone(), test.chat_id.clone(), from.clone());
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        tokio::task::spawn_blocking(move || {
            let member = store.member(&chat, &from.user_id)?;
            let name = if !from.name.is_empty() {
                from.name.clone()
            } else if let Some(m) = member.as_ref().filter(|m| !m.name.is_empty()) {
                m.name.clone()
            } else {
                // Bot accounts send ids only; the member list has the names.
                store.roster_name(&chat, &from.user_id)?.unwrap_or_default()
            };
            let record = ClaimRecord {
                user_id: from.user_id.clone(),
                name,
                amount_fen,
                at,
                // This message is not counted yet: any count is an earlier message.
                spoke_before: member.is_some_and(|m| m.message_count > 0),
                via,
            };
            store.write(|tx| tx.put_claim(&test_id, index, &record))?;
            Ok(record)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("claim task failed: {e}")))?
    }

    /// Cancels the test running in `which` (its id, or its group): stored as cancelled with
    /// `by`, no results; with `announce`, `[messages.cancelled]` is posted to the group (when it
    /// is still adopted). Claims after this are answered as cancelled.
    pub async fn cancel(
        &self,
        which: &TestRef,
        by: &str,
        announce: bool,
    ) -> Result<TestRecord, CancelError> {
        let slot = {
            let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            match which {
                TestRef::Chat(chat) => running.get(chat),
                TestRef::Id(id) => running.values().find(|s| s.id == *id),
            }
            .map(|slot| Arc::clone(&slot.test))
        };
        let Some(slot) = slot else {
            return Err(self.not_running(which).await);
        };
        let mut run = slot.lock().await;
        if run.done {
            drop(run);
            return Err(self.not_running(which).await);
        }
        let now = self.now();
        let chat = run.test.chat_id.clone();
        let store = self.store.clone();
        let (key, test_id) = (chat.clone(), run.test.id.clone());
        let facts = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            Ok((store.envelope_posted_at(&test_id)?, store.group(&key)?))
        })
        .await
        .map_err(|e| CancelError::Store(StoreError::Db(e.to_string())))?;
        let (posted_at, group) = facts.map_err(CancelError::Store)?;
        let mut test = run.test.clone();
        test.state = TestState::Cancelled;
        test.finished_at = Some(now);
        test.posted_at = posted_at;
        test.cancelled_by = Some(by.to_owned());
        let scripts = self.scripts.current();
        let announcement = match (&group, scripts.red_envelope.messages.as_ref()) {
            (Some(group), Some(messages)) if announce && group.status == GroupStatus::Adopted => {
                self.cancel_post(&scripts, messages, group, &test, now)
            }
            _ => None,
        };
        let store = self.store.clone();
        let record = test.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                tx.put_envelope_test(&record)?;
                match announcement {
                    Some(send) => tx.enqueue(send, now),
                    None => Ok(None),
                }
            })
        })
        .await
        .map_err(|e| CancelError::Store(StoreError::Db(e.to_string())))?;
        if let Some(entry) = written.map_err(CancelError::Store)? {
            (self.dispatch)(entry);
        }
        info!(test = %test.id, chat = %chat, by, claims = run.claims.len(), "red-envelope test cancelled");
        self.close(&mut run, &test);
        Ok(test)
    }

    /// Moves `run`, now stored as `test` (finished or cancelled), from the running tests to
    /// the closed ones that answer late claims.
    fn close(&self, run: &mut Running, test: &TestRecord) {
        run.done = true;
        run.test = test.clone();
        self.running_remove(&test.chat_id);
        let closed = closed_of(test, &run.claims, phrase_key(&test.claim_phrase));
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(test.chat_id.clone(), closed);
    }

    /// Cancels the test running in `chat`, which the bot no longer serves: nobody can claim,
    /// and a restart does not resume it. Nothing is posted (the group is gone).
    pub async fn group_released(&self, chat: &ChatId) {
        match self
            .cancel(&TestRef::Chat(chat.clone()), RELEASED_BY, false)
            .await
        {
            Ok(_) | Err(CancelError::NothingRunning) => {}
            Err(e) => {
                error!(chat = %chat, error = %e, "the released group's red-envelope test was not cancelled")
            }
        }
    }

    /// Why `which` could not be cancelled: no such test, or it is not running.
    async fn not_running(&self, which: &TestRef) -> CancelError {
        let TestRef::Id(id) = which else {
            return CancelError::NothingRunning;
        };
        let store = self.store.clone();
        let id = id.clone();
        match tokio::task::spawn_blocking(move || store.envelope_test(&id)).await {
            Ok(Ok(Some(test))) => CancelError::NotRunning(test.state),
            Ok(Ok(None)) => CancelError::UnknownTest,
            Ok(Err(e)) => CancelError::Store(e),
            Err(e) => CancelError::Store(StoreError::Db(e.to_string())),
        }
    }

    /// `[messages.cancelled]`, to the group.
    fn cancel_post(
        &self,
        scripts: &Scripts,
        messages: &EnvelopeMessages,
        group: &crate::store::GroupRecord,
        test: &TestRecord,
        now: DateTime<Utc>,
    ) -> Option<NewSend> {
        let chat = &group.chat_id;
        let to = crate::outbox::group_destination(group, &self.webhook_hosts)
            .map_err(|why| warn!(test = %test.id, chat = %chat, "cancellation not posted: {why}"))
            .ok()?;
        let envelope = texts::envelope(test, group.account.is_none());
        let message = self
            .render_post(scripts, &messages.cancelled, chat, context! { envelope })
            .map_err(|e| error!(test = %test.id, error = %e, "the cancellation did not render"))
            .ok()?;
        Some(NewSend {
            key: format!("envelope:{}:cancelled", test.id),
            chat: Some(chat.clone()),
            bot: Some(group.bot.clone()),
            to,
            message,
            purpose: "red_envelope".into(),
            run: None,
            not_before: Some(now),
            skip: None,
        })
    }

    /// Finishes every test whose window has ended; returns how many could not be finished.
    pub async fn finish_due(&self) -> usize {
        let now = self.now();
        let due: Vec<_> = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|s| s.ends_at <= now)
            .map(|s| Arc::clone(&s.test))
            .collect();
        let mut failed = 0;
        for test in due {
            let mut run = test.lock().await;
            if !run.done && !self.finish_locked(&mut run, now, now).await {
                failed += 1;
            }
        }
        let keep_from = now - chrono::Duration::from_std(LATE_ANSWERS_FOR).unwrap_or_default();
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, c| c.finished_at >= keep_from);
        failed
    }

    /// Finishes `run`: results, the group's announcement and the admins' report, stored and
    /// queued together. False when the store refused (the test stays running; tried again).
    /// `announce_at`: when the group's announcement and the admins' report may go out.
    async fn finish_locked(
        &self,
        run: &mut Running,
        now: DateTime<Utc>,
        announce_at: DateTime<Utc>,
    ) -> bool {
        let chat = run.test.chat_id.clone();
        let store = self.store.clone();
        let key = chat.clone();
        let test_id = run.test.id.clone();
        let facts = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let posted_at = store.envelope_posted_at(&test_id)?;
            let group = store.group(&key)?;
            let roster = match &group {
                Some(group) => store.members_listed(group)?,
                None => 0,
            };
            Ok((group, roster, posted_at))
        })
        .await;
        let (group, roster, posted_at) = match facts {
            Ok(Ok(facts)) => facts,
            Ok(Err(e)) => {
                error!(test = %run.test.id, error = %e, "test not finished: the store is unreadable");
                return false;
            }
            Err(e) => {
                error!(test = %run.test.id, error = %e, "test not finished: task failed");
                return false;
            }
        };
        let scripts = self.scripts.current();
        // Only a bot account lists the members; the robot knows those who spoke to it.
        let members = (roster > 0).then_some(roster);
        let claims: Vec<Claim> = run.claims.iter().map(engine_claim).collect();
        let silent = run.claims.iter().filter(|c| !c.spoke_before).count();
        // Measured from when members could see the envelope: a post held back (an account
        // offline, a rate limit) must not make a group look slow. A delivery is recorded a moment
        // after it happens, so a claim may come before it: then it was seen by then.
        let first_claim = run.claims.iter().map(|c| c.at).min();
        let shown = posted_at
            .map(|p| first_claim.map_or(p, |c| p.min(c)))
            .unwrap_or(run.test.started_at)
            .clamp(run.test.started_at, run.test.ends_at);
        let results = rules::results(
            &claims,
            run.test.shares,
            shown,
            (run.test.ends_at - shown).to_std().unwrap_or_default(),
            members,
            silent,
            &scripts.red_envelope.verdict,
        );
        if posted_at.is_none() {
            warn!(test = %run.test.id, chat = %chat, "the envelope never reached the group: its results say nothing about it");
        }
        let mut test = run.test.clone();
        test.posted_at = posted_at;
        test.state = TestState::Finished;
        test.finished_at = Some(now);
        test.results = Some(results.clone());
        let sends = match (&group, scripts.red_envelope.messages.as_ref()) {
            (Some(group), Some(messages)) if group.status == GroupStatus::Adopted => self
                .finish_posts(
                    &scripts,
                    messages,
                    group,
                    &test,
                    &run.claims,
                    members,
                    announce_at,
                ),
            _ => {
                warn!(test = %test.id, chat = %chat, "the group is no longer adopted: results stored, nothing posted");
                Vec::new()
            }
        };
        let store = self.store.clone();
        let record = test.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                tx.put_envelope_test(&record)?;
                let mut entries = Vec::new();
                for send in sends {
                    entries.extend(tx.enqueue(send, now)?);
                }
                Ok(entries)
            })
        })
        .await;
        let entries = match written {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => {
                error!(test = %test.id, error = %e, "test not finished: the store refused; trying again");
                return false;
            }
            Err(e) => {
                error!(test = %test.id, error = %e, "test not finished: task failed; trying again");
                return false;
            }
        };
        for entry in entries {
            (self.dispatch)(entry);
        }
        info!(test = %test.id, chat = %chat, claims = results.claims, claimed_fen = results.claimed_fen,
            verdict = ?results.verdict, "red-envelope test finished");
        self.close(run, &test);
        true
    }

    /// The announcement to the group and the report to the operators' alert target.
    #[allow(clippy::too_many_arguments)]
    fn finish_posts(
        &self,
        scripts: &Scripts,
        messages: &EnvelopeMessages,
        group: &crate::store::GroupRecord,
        test: &TestRecord,
        claims: &[ClaimRecord],
        members: Option<u64>,
        announce_at: DateTime<Utc>,
    ) -> Vec<NewSend> {
        let chat = &group.chat_id;
        let to = match crate::outbox::group_destination(group, &self.webhook_hosts) {
            Ok(to) => to,
            Err(why) => {
                warn!(test = %test.id, chat = %chat, "results not posted: {why}");
                return Vec::new();
            }
        };
        let Some(results) = &test.results else {
            return Vec::new();
        };
        let vars = context! {
            envelope => texts::envelope(test, group.account.is_none()),
            results => texts::results(results, claims, test, members),
        };
        let mut posts = Vec::new();
        match self.render_post(scripts, &messages.finished, chat, vars.clone()) {
            Ok(message) => posts.push((message, "red_envelope")),
            Err(e) => error!(test = %test.id, error = %e, "the announcement did not render"),
        }
        // The verdict on a group is for the operators, not its members: the report goes to the
        // alert target, never into the group.
        let mut alert = None;
        match self.render_post(scripts, &messages.report, chat, vars) {
            Ok(OutMessage::Text { content, .. }) => {
                let text = with_group_name(&self.directory.get(chat), &content);
                alert = self.alerts.send(
                    format!("envelope:{}:report", test.id),
                    chat,
                    "red_envelope_report",
                    text,
                    announce_at,
                );
                if alert.is_none() {
                    info!(test = %test.id, chat = %chat, "results kept in the API only: no [alerts] webhook_url");
                }
            }
            Ok(_) => error!(test = %test.id, "the report is not text"),
            Err(e) => error!(test = %test.id, error = %e, "the report did not render"),
        }
        posts
            .into_iter()
            .enumerate()
            .map(|(i, (message, purpose))| NewSend {
                key: format!("envelope:{}:finished:{i}", test.id),
                chat: Some(chat.clone()),
                bot: Some(group.bot.clone()),
                to: to.clone(),
                message,
                purpose: purpose.into(),
                run: None,
                not_before: Some(announce_at),
                skip: None,
            })
            .chain(alert)
            .collect()
    }

    fn render_post(
        &self,
        scripts: &Scripts,
        message: &Message,
        chat: &ChatId,
        extra: minijinja::Value,
    ) -> Result<OutMessage, String> {
        let settings = self.directory.get(chat);
        let now = self.now();
        let vars = || context! { ..extra, ..engine::vars::base(&Sender::default(), Role::Member, Some(chat), &settings, now) };
        message
            .push(&scripts.templates, vars, &[])
            .map_err(|e| e.to_string())
    }

    fn render_reply(
        &self,
        scripts: &Scripts,
        message: &Message,
        chat: &ChatId,
        from: &Sender,
        now: DateTime<Utc>,
        extra: minijinja::Value,
    ) -> Option<Reply> {
        let settings = self.directory.get(chat);
        let role = scripts.commands.role_of(&settings, &from.user_id);
        let vars =
            || context! { ..extra, ..engine::vars::base(from, role, Some(chat), &settings, now) };
        message
            .reply(&scripts.templates, vars, &from.user_id)
            .map_err(|e| error!(chat = %chat, error = %e, "a red-envelope answer did not render"))
            .ok()
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
