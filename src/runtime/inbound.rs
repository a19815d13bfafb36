//! What happens to an event from any channel: one event per conversation at a time, in
//! arrival order; an event seen before handled once; reported joins handed to the welcomer; the
//! engine's decision fitted to what the channel can do; settings changes saved before anything
//! else; cooldowns started; and the event, with the posts it caused, handed to the pipeline.
//! [`handle`] returns once the event's batch is committed — an answer is a promise — and the
//! channel then delivers the reply (if any) its own way; [`handle_queued`] returns as soon as the
//! event is queued, for channels that acknowledge nothing (the OneBot socket).

use chrono::Utc;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::domain::{Action, Capabilities, ChatId, Event, EventKind, Joiner, Reply};
use crate::engine::{self, GroupStats, GroupView, MemberBrief, RecentMessage};
use crate::runtime::Services;
use crate::runtime::accounts::{self, Removal};
use crate::runtime::dedupe::{Lookup, dedupe_key};
use crate::runtime::moderation;
use crate::runtime::pipeline::{NotRecorded, PipelineStopped, Post, SubmitError, Work, unix_now};
use crate::store::DedupeRecord;

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Handled before (a retry, a repeated event id): nothing done again; the reply it got then.
    Duplicate(Option<Reply>),
    /// Handled now; the reply to give, if any.
    New(Option<Reply>),
    /// A settings change could not be saved: the member is told (this reply) and nothing was
    /// recorded, so that a retry tries again.
    NotSaved(Option<Reply>),
}

/// Why an event was not accepted: nothing of it is recorded, and a retry is handled as new.
#[derive(Debug, thiserror::Error)]
pub enum NotAccepted {
    /// The service is shutting down.
    #[error(transparent)]
    Stopped(#[from] PipelineStopped),
    /// The store kept failing.
    #[error(transparent)]
    NotRecorded(#[from] NotRecorded),
    /// The pipeline's queue stayed full for the answer's whole budget: try again shortly.
    #[error("too busy to keep the event in time")]
    Busy,
}

/// How long an event may wait for room in the pipeline's queue: WeCom gives up on an answer
/// after 5 s, and a refusal it retries is better than an answer it never sees.
pub const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(4);

/// Handles `event` on a channel that can do `caps` and returns once everything it changed is
/// committed: what the caller answers is kept. Fails when the pipeline has stopped or the store
/// kept failing; then nothing was recorded.
pub async fn handle(
    state: &Services,
    event: Event,
    caps: Capabilities,
) -> Result<Handled, NotAccepted> {
    let (handled, committed) = accept(state, event, caps, Some(QUEUE_WAIT))
        .await
        .map_err(|e| match e {
            SubmitError::Stopped(stopped) => NotAccepted::Stopped(stopped),
            SubmitError::Busy => NotAccepted::Busy,
        })?;
    if let Some(committed) = committed {
        // A dropped sender means the pipeline went away with the batch: not recorded.
        committed.await.map_err(|_| NotRecorded)??;
    }
    Ok(handled)
}

/// Handles `event` like [`handle`], but returns as soon as it is queued for the store: for a
/// channel that acknowledges nothing, whose events stay in order on the pipeline anyway.
pub async fn handle_queued(
    state: &Services,
    event: Event,
    caps: Capabilities,
) -> Result<Handled, PipelineStopped> {
    match accept(state, event, caps, None).await {
        Ok((handled, _)) => Ok(handled),
        Err(SubmitError::Stopped(stopped)) => Err(stopped),
        // Without a deadline the queue is waited for: never busy.
        Err(SubmitError::Busy) => Err(PipelineStopped),
    }
}

/// The message id part of a de-duplication key, for the log.
fn key_hint(key: &str) -> &str {
    key.rsplit('\u{1f}').next().unwrap_or(key)
}

/// The reply an earlier handling of `key` got, when it was handled before. A retry of an event
/// whose batch is still being committed waits for it.
async fn handled_before(state: &Services, key: &str) -> Option<Option<Reply>> {
    let mut found = state.dedupe.lookup(key);
    if found == Lookup::Pending {
        found = state.dedupe.wait_settled(key).await;
    }
    let in_memory = match found {
        Lookup::Handled => true,
        Lookup::Unseen if state.dedupe.must_ask_store(unix_now()) => false,
        Lookup::Unseen | Lookup::Pending => return None,
    };
    let store = state.store.clone();
    let owned = key.to_owned();
    match tokio::task::spawn_blocking(move || store.dedupe_record(&owned)).await {
        Ok(Ok(Some(record))) => Some(record.reply),
        // A digest that matched another id (or an id pruned meanwhile): new.
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            error!(error = %e, "a handled id's record is unreadable");
            // Memory says it was handled: doing it twice is worse than an answer without reply.
            in_memory.then_some(None)
        }
        Err(e) => {
            error!(error = %e, "the handled-id read failed");
            in_memory.then_some(None)
        }
    }
}

/// Decides and performs what `event` calls for and queues it for the store, waiting at most
/// `queue_wait` for room (`None`: as long as it takes); returns the outcome and, for a new event,
/// where the commit of its batch will be told.
async fn accept(
    state: &Services,
    event: Event,
    caps: Capabilities,
    queue_wait: Option<std::time::Duration>,
) -> Result<(Handled, Option<oneshot::Receiver<Result<(), NotRecorded>>>), SubmitError> {
    let now = Utc::now();
    let conversation = match event.chat_id() {
        Some(chat) => chat.to_string(),
        None => format!("direct:{}", event.from.user_id),
    };
    // One event of a conversation at a time, in arrival order: a command's change is in force
    // for the next message, and a retry waits for the original to finish.
    let mut lane = state.lanes.enter(&conversation).await;
    let key = dedupe_key(&event.bot, &event.msg_id);
    if let Some(reply) = handled_before(state, &key).await {
        info!(bot = %event.bot, msg_id = %event.msg_id, "a handled message again; handled once");
        return Ok((Handled::Duplicate(reply), None));
    }
    // A claim of a red-envelope test is the phrase and a few characters more: nothing for
    // moderation (the same phrase from many members is not a campaign) nor for keywords.
    let claim = match event.kind.is_message() {
        true => state.envelopes.claim_target(&event),
        false => None,
    };
    // Moderation first: a spam message gets no answer, a blacklisted joiner no welcome.
    let screened = match &event.kind {
        _ if claim.is_some() => moderation::Screened::default(),
        EventKind::MemberJoined { .. } => moderation::screen_join(state, &event, caps, now).await,
        kind if kind.is_message() => moderation::screen_message(state, &event, caps, now).await,
        _ => moderation::Screened::default(),
    };
    if !screened.acted {
        welcome_joiner(state, &event).await;
    }
    let decided = if screened.acted || claim.is_some() {
        Vec::new()
    } else {
        decide(state, &event, &conversation, lane.recent(), now, caps).await
    };
    if let Some(text) = engine::heard_text(&event) {
        lane.remember(RecentMessage {
            user_id: event.from.user_id.clone(),
            text,
            at: now,
        });
    }
    let mut todo = ToDo::sorted(state, &event, &conversation, decided, now);
    if let Some(target) = claim {
        todo.reply = todo.reply.or(state.envelopes.claim(&event, target).await);
    }
    if let EventKind::EnvelopeGrabbed { amount_fen } = &event.kind {
        state.envelopes.record_grab(&event, *amount_fen).await;
    }
    if let Err(failed) = save_changes(state, &event, std::mem::take(&mut todo.changes), now).await {
        return Ok((Handled::NotSaved(failed), None));
    }
    let mut posts = screened.posts;
    let reply = todo
        .perform(state, &event, &mut lane, caps, &mut posts, now)
        .await;
    let record = DedupeRecord {
        at: unix_now(),
        reply,
    };
    let reply = record.reply.clone();
    let committed = queue(
        state,
        event,
        key,
        record,
        posts,
        screened.writes,
        queue_wait,
    )
    .await?;
    // The next event of the conversation may be decided while this one is committed: the
    // pipeline applies them in this order.
    drop(lane);
    Ok((Handled::New(reply), Some(committed)))
}

/// Hands a reported join to the welcomer (unless moderation kept the member out).
async fn welcome_joiner(state: &Services, event: &Event) {
    let (EventKind::MemberJoined { scene, .. }, Some(chat)) = (&event.kind, event.chat_id()) else {
        return;
    };
    let joiner = Joiner {
        member: event.from.clone(),
        scene: *scene,
    };
    if state
        .welcomer
        .joined(chat.clone(), vec![joiner], event.received_at)
        .await
        .is_err()
    {
        warn!(bot = %event.bot, chat = %chat, member = %event.from.user_id,
            "the welcomer has stopped: this join is not welcomed");
    }
}

/// The engine's decision sorted by who carries each part out.
#[derive(Default)]
struct ToDo {
    reply: Option<Reply>,
    posts: Vec<Post>,
    changes: Vec<crate::domain::SettingsChange>,
    removals: Vec<(String, String, String)>,
    deletions: Vec<String>,
    requests: Vec<crate::domain::ModerationRequest>,
    envelope_tests: Vec<crate::domain::EnvelopeParams>,
    cancel_envelope: bool,
}

impl ToDo {
    /// Sorts `decided`; cooldowns start here (they are memory only).
    fn sorted(
        state: &Services,
        event: &Event,
        conversation: &str,
        decided: Vec<Action>,
        now: chrono::DateTime<Utc>,
    ) -> Self {
        let mut todo = Self::default();
        for action in decided {
            match action {
                Action::Reply(r) => todo.reply = Some(r),
                Action::Post { message, purpose } => todo.posts.push(Post { message, purpose }),
                Action::Settings(change) => todo.changes.push(change),
                Action::StartCooldown { rule, secs } => {
                    debug!(bot = %event.bot, msg_id = %event.msg_id, rule = %rule, "keyword reply");
                    state.cooldowns.start(conversation, &rule, now, secs);
                }
                // Only channels that can remove members get this (`degrade`).
                Action::RemoveMember {
                    user_id,
                    name,
                    reason,
                } => todo.removals.push((user_id, name, reason)),
                // Nor is a deletion asked of a channel that cannot delete.
                Action::DeleteMessage { message_id } => todo.deletions.push(message_id),
                Action::Moderation(request) => todo.requests.push(request),
                Action::StartEnvelopeTest(params) => todo.envelope_tests.push(params),
                Action::CancelEnvelopeTest => todo.cancel_envelope = true,
                // `degrade` turned this into a post.
                other @ Action::NotifyAdmins { .. } => {
                    warn!(bot = %event.bot, action = ?other, "action not performed on this channel")
                }
            }
        }
        todo
    }

    /// Carries out what is left once settings are saved: moderation requests, red-envelope
    /// tests started or cancelled, deletions and removals. Adds the posts they cause to `posts`;
    /// returns the reply (a refusal replaces the engine's answer).
    async fn perform(
        self,
        state: &Services,
        event: &Event,
        lane: &mut crate::runtime::lanes::Lane,
        caps: Capabilities,
        posts: &mut Vec<Post>,
        now: chrono::DateTime<Utc>,
    ) -> Option<Reply> {
        let mut reply = self.reply;
        posts.extend(self.posts);
        for request in self.requests {
            let recent = lane.recent();
            posts.extend(
                moderation::requests::perform(state, event, request, recent, caps, now).await,
            );
        }
        let by = format!("chat:{}", event.from.user_id);
        if let (Some(chat), true) = (event.chat_id(), self.cancel_envelope) {
            let which = crate::runtime::red_envelope::TestRef::Chat(chat.clone());
            // The command's answer tells the group; no second announcement.
            if let Err(e) = state.envelopes.cancel(&which, &by, false).await {
                warn!(bot = %event.bot, chat = %chat, by = %by, error = %e, "red-envelope test not cancelled");
                reply = state.envelopes.cancel_refusal(event, &e);
            }
        }
        if let Some(chat) = event.chat_id() {
            for params in self.envelope_tests {
                if let Err(e) = state.envelopes.start(chat, params, &by).await {
                    warn!(bot = %event.bot, chat = %chat, by = %by, error = %e, "red-envelope test not started");
                    reply = state.envelopes.refusal(event, &e);
                }
            }
        }
        if let (EventKind::BotRemoved, Some(chat)) = (&event.kind, event.chat_id()) {
            state.envelopes.group_released(chat).await;
        }
        for message_id in self.deletions {
            delete(state, event, &message_id).await;
        }
        for (user, name, reason) in self.removals {
            let target = (user.as_str(), name.as_str());
            if let (_, Some(post)) = remove(state, event, target, &reason, caps, false).await {
                posts.push(post);
            }
        }
        reply
    }
}

/// Saves a command's settings changes before anything else is done. When they cannot be saved,
/// the member is told (the reply returned as the error) and a retry of the message tries again.
async fn save_changes(
    state: &Services,
    event: &Event,
    changes: Vec<crate::domain::SettingsChange>,
    now: chrono::DateTime<Utc>,
) -> Result<(), Option<Reply>> {
    let Some(chat) = event.chat_id().filter(|_| !changes.is_empty()) else {
        return Ok(());
    };
    match state.directory.change(chat, changes).await {
        Ok(_) => {
            info!(bot = %event.bot, chat = %chat, by = %event.from.user_id, "group settings changed");
            Ok(())
        }
        Err(e) => {
            error!(bot = %event.bot, chat = %chat, error = %e, "group settings not saved");
            let scripts = state.scripts.current();
            let failed = scripts.commands.replies.as_ref().map(|r| &r.failed);
            let settings = state.directory.get(chat);
            let vars = || {
                let role = scripts.commands.role_of(&settings, &event.from.user_id);
                engine::vars::base(&event.from, role, Some(chat), &settings, now)
            };
            Err(failed.and_then(|m| {
                m.reply(&scripts.templates, vars, &event.from.user_id)
                    .map_err(|e| error!(error = %e, "the failure answer did not render"))
                    .ok()
            }))
        }
    }
}

/// Queues the event with what it caused for the pipeline (pending in the dedupe set until its
/// batch is committed: a retry meanwhile waits for that); returns where the commit is told.
async fn queue(
    state: &Services,
    event: Event,
    key: String,
    record: DedupeRecord,
    posts: Vec<Post>,
    moderation: Vec<crate::store::ModerationWrite>,
    queue_wait: Option<std::time::Duration>,
) -> Result<oneshot::Receiver<Result<(), NotRecorded>>, SubmitError> {
    state.dedupe.begin(&key, record.at);
    debug!(bot = %event.bot, msg_id = %event.msg_id, chat = ?event.chat_id(), "accepted");
    let (done, committed) = oneshot::channel();
    let work = Work::Event {
        event: Box::new(event),
        dedupe_key: key.clone(),
        dedupe: record,
        posts,
        moderation,
        done: Some(done),
    };
    let queued = match queue_wait {
        Some(wait) => state.pipeline.submit_within(work, wait).await,
        None => state.pipeline.submit(work).await.map_err(SubmitError::from),
    };
    if let Err(e) = queued {
        // Not recorded: a retry of the event is handled as new.
        warn!(msg_id = %key_hint(&key), error = %e, "event not queued");
        state.dedupe.abandoned([key.as_str()]);
        return Err(e);
    }
    Ok(committed)
}

/// Removes `user` from the event's group through its bot account. Returns how it went and the
/// notice to the admins to post: always when the removal is not confirmed, and also when it is
/// if `announce` (moderation tells the admins about every removal).
pub(crate) async fn remove(
    state: &Services,
    event: &Event,
    (user, name): (&str, &str),
    reason: &str,
    caps: Capabilities,
    announce: bool,
) -> (Option<Removal>, Option<Post>) {
    let (Some(chat), Some(account)) = (event.chat_id(), &event.account) else {
        warn!(bot = %event.bot, user, "a removal without a bot account to perform it");
        return (None, None);
    };
    let key = crate::domain::AccountKey {
        bot: event.bot.clone(),
        user_id: account.clone(),
    };
    let outcome = accounts::remove_member(&state.store, &*state.accounts, &key, chat, user).await;
    info!(bot = %event.bot, chat = %chat, user, reason, outcome = outcome.as_str(), "removal");
    let who = engine::vars::name_and_id(name, user);
    let text = match outcome {
        Removal::Confirmed if !announce => return (Some(outcome), None),
        Removal::Confirmed => format!("已将成员 {who} 移出本群。{reason}"),
        Removal::NotAMember => format!("{who} 不在本群成员名单里，没有移出。"),
        Removal::OwnAccount => {
            "机器人不会把自己移出本群；要让机器人退群，请在管理后台释放这个群。".into()
        }
        _ => format!("未能确认已将成员 {who} 移出本群，请管理员处理。原因：{reason}"),
    };
    (Some(outcome), notice_post(state, chat, text, caps))
}

/// A notice to `chat`'s admins as the post that carries it (where the channel can post).
pub(crate) fn notice_post(
    state: &Services,
    chat: &ChatId,
    text: String,
    caps: Capabilities,
) -> Option<Post> {
    let settings = state.directory.get(chat);
    let (actions, _) = engine::degrade(vec![Action::NotifyAdmins { text }], caps, &settings);
    actions.into_iter().find_map(|a| match a {
        Action::Post { message, purpose } => Some(Post { message, purpose }),
        _ => None,
    })
}

/// Deletes a message of the event's group through its bot account. A failure is logged: the
/// admins were told about the message in any case when the rules asked for it.
pub(crate) async fn delete(state: &Services, event: &Event, message_id: &str) -> bool {
    let Some(account) = &event.account else {
        warn!(bot = %event.bot, message_id, "a deletion without a bot account to perform it");
        return false;
    };
    let key = crate::domain::AccountKey {
        bot: event.bot.clone(),
        user_id: account.clone(),
    };
    match state.accounts.delete_message(&key, message_id).await {
        Ok(()) => {
            info!(bot = %event.bot, chat = ?event.chat_id(), message_id, "message deleted");
            true
        }
        Err(e) => {
            warn!(bot = %event.bot, chat = ?event.chat_id(), message_id, error = %e,
                "message not deleted");
            false
        }
    }
}

/// Runs the engine on `event` with the group's view, and fits the actions to the channel.
async fn decide(
    state: &Services,
    event: &Event,
    conversation: &str,
    recent: &[RecentMessage],
    now: chrono::DateTime<Utc>,
    caps: Capabilities,
) -> Vec<Action> {
    let scripts = state.scripts.current();
    let settings = event
        .chat_id()
        .map(|chat| state.directory.get(chat))
        .unwrap_or_default();
    // Commands may name members and show counters: only they pay for reading the store.
    let (members, stats) = match event.chat_id() {
        Some(chat) if engine::is_command(event, &scripts) => {
            group_facts(state, chat, caps, now).await
        }
        _ => (Vec::new(), None),
    };
    let cooling = |rule: &str| state.cooldowns.is_cooling(conversation, rule, now);
    let view = GroupView {
        settings: &settings,
        recent,
        stats: stats.as_ref(),
        members: &members,
        cooling: &cooling,
        can_remove_members: caps.can_remove_members,
        can_message_privately: caps.can_message_privately,
    };
    let decision = engine::decide(event, &view, &scripts, now);
    for problem in &decision.problems {
        error!(bot = %event.bot, msg_id = %event.msg_id, error = %problem,
            "a template failed to render; that message is not sent");
    }
    let (actions, notes) = engine::degrade(decision.actions, caps, &settings);
    for note in notes {
        warn!(bot = %event.bot, chat = ?event.chat_id(), "{note}");
    }
    actions
}

/// The group's members and counters from the store (for commands).
async fn group_facts(
    state: &Services,
    chat: &ChatId,
    caps: Capabilities,
    now: chrono::DateTime<Utc>,
) -> (Vec<MemberBrief>, Option<GroupStats>) {
    let store = state.store.clone();
    let chat = chat.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        let mut members = store.members(&chat)?;
        // On a bot account the member list knows everyone, also those who never spoke.
        for (user_id, name) in store.roster(&chat)? {
            if !members.iter().any(|m| m.user_id == user_id) {
                members.push(crate::store::MemberRecord {
                    user_id,
                    name,
                    alias: String::new(),
                    first_seen: now,
                    last_seen: now,
                    message_count: 0,
                });
            }
        }
        let group = store.group(&chat)?;
        let listed = match &group {
            Some(group) => store.members_listed(group)?,
            None => 0,
        };
        let today = store.daily(&chat, now)?;
        Ok((members, group, today, listed))
    })
    .await;
    match read {
        Ok(Ok((members, group, today, listed))) => {
            let members = members
                .into_iter()
                .map(|m| MemberBrief {
                    user_id: m.user_id,
                    name: m.name,
                })
                .collect();
            let stats = GroupStats {
                members_seen: group.as_ref().map_or(0, |g| g.members_seen),
                messages: group.as_ref().map_or(0, |g| g.messages),
                today_messages: today.messages,
                today_speakers: today.speakers,
                members: listed,
                sees_every_message: caps.sees_every_message,
            };
            (members, Some(stats))
        }
        Ok(Err(e)) => {
            warn!(error = %e, "group facts unreadable; the command runs without them");
            (Vec::new(), None)
        }
        Err(e) => {
            warn!(error = %e, "group facts task failed");
            (Vec::new(), None)
        }
    }
}
