//! Moderation, the stateful part: for each group message, what the pure checks
//! (`engine::moderation`) need — the member's standing (cached, from the store), recent activity
//! ([`activity`]), the operator-wide blacklist ([`state`]) — then the engine's response carried
//! out: the message deleted, the warning posted, the member removed (confirmed by the member
//! list), the admins told, and the moderation log written with how each step went. Joins
//! ([`joins`]) feed raid detection and keep blacklisted members out. People's requests (pardon,
//! trust, report, appeal) are in [`requests`].

pub mod activity;
mod joins;
pub mod learning;
pub mod notices;
pub mod qr;
pub mod rejudge;
pub mod requests;
mod state;

pub use joins::screen_join;
use state::MemberState;
pub use state::{FetchPolicy, Moderator};

use chrono::{DateTime, Utc};
use tracing::{debug, error, info, warn};

use crate::domain::{Action, Capabilities, ChatId, Event, EventKind, MixedItem};
use crate::engine::moderation::response::shorten;
use crate::engine::moderation::{
    self, Activity, Content, Finding, ModerationRules, Prepared, Response, Severity, Standing,
    Verdict,
};
use crate::engine::scope::Place;
use crate::engine::vars;
use crate::runtime::Services;
use crate::runtime::accounts::Ability;
use crate::runtime::pipeline::Post;
use crate::store::{BlacklistEntry, Fold, LogEntry, ModerationWrite, StandingRecord};
use activity::Sighting;

/// The longest text kept in a log entry, in characters.
const LOG_TEXT_CHARS: usize = 500;

/// What moderation did about a message.
#[derive(Debug, Default)]
pub struct Screened {
    /// Posts to make (the warning, notices to the admins).
    pub posts: Vec<Post>,
    /// The message was acted on (deleted or worse): the bot does not answer it otherwise.
    pub acted: bool,
    /// What to write with the event's batch (the log entry, the standing, a ban).
    pub writes: Vec<ModerationWrite>,
}

/// `text` without @-mentions: channels render a mention of a member as `@<user id>`, and a
/// WeChat id there (`@wxid_abc123`) is whom the member talks to, not a contact offered.
fn without_mentions(text: &str) -> String {
    text.split(' ')
        .filter(|word| !word.starts_with('@'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of a message (mentions left out) and the channel types of its parts; `None` for
/// events that are not messages.
fn message_content(kind: &EventKind) -> Option<(String, Vec<&str>)> {
    match kind {
        EventKind::Text { text } => Some((without_mentions(text), vec!["text"])),
        EventKind::Image { .. } => Some((String::new(), vec!["image"])),
        EventKind::Mixed { items } => {
            let mut text = Vec::new();
            let mut parts = Vec::new();
            for item in items {
                match item {
                    MixedItem::Text(t) => {
                        text.push(without_mentions(t));
                        parts.push("text");
                    }
                    MixedItem::Image(_) => parts.push("image"),
                    MixedItem::Other { kind, .. } => parts.push(kind.as_str()),
                }
            }
            Some((text.join(" "), parts))
        }
        _ => None,
    }
}

/// Checks a group message and carries out the verdict. Messages from the bot account itself,
/// and events that are not messages, pass untouched.
pub async fn screen_message(
    state: &Services,
    event: &Event,
    caps: Capabilities,
    now: DateTime<Utc>,
) -> Screened {
    let Some(chat) = event.chat_id() else {
        return Screened::default();
    };
    let user = event.from.user_id.as_str();
    if user.is_empty() || event.account.as_deref() == Some(user) {
        return Screened::default();
    }
    let Some((text, parts)) = message_content(&event.kind) else {
        return Screened::default();
    };
    let scripts = state.scripts.current();
    let rules = &scripts.moderation;
    let moderator = &state.moderator;
    let blacklisted = moderator.blacklisted(user);
    if rules.is_empty() && blacklisted.is_none() {
        return Screened::default();
    }
    let settings = state.directory.get(chat);
    let role = scripts.commands.role_of(&settings, user);
    let mut member = moderator.member(&state.store, chat, user).await;
    let prepared = Prepared::new(&text, &rules.variants);
    let before = moderator.sight(event, chat, &prepared, rules.longest_window(), now);
    let place = Place {
        chat: Some(chat),
        settings: &settings,
    };
    let message = Heard {
        text: &text,
        prepared: &prepared,
        parts: &parts,
        before: &before,
    };
    let mut verdict = judge(state, event, rules, place, role, &member, &message, now).await;
    member.messages += 1;
    member.first_seen.get_or_insert(now);
    if let Some(entry) = &blacklisted
        && !verdict.trusted
        && !member.blacklist_checked
    {
        verdict.findings.push(blacklist_finding(state, entry));
    }
    member.blacklist_checked = true;
    let (Some(outcome), Some(worst)) = (verdict.outcome(), verdict.worst()) else {
        moderator.keep(chat, user, member);
        return Screened::default();
    };
    // A finding ends the clean streak; a warning the engine gave is remembered for the window.
    member.record.clean_from = member.messages;
    member.record.warnings = verdict.warnings_after(&member.record.warnings, now);
    // Decided before the notice is rendered: a folded notice costs no template and no post.
    let admit = match verdict.settings.dry_run {
        true => notices::Admit::Post { folded: 0 },
        false => moderator
            .notices
            .admit(chat, user, &worst.check, outcome.as_str(), now),
    };
    let sender = named_sender(state, event, chat, admit).await;
    let case = moderation::Case {
        verdict: &verdict,
        sender: &sender,
        text: &text,
        message_id: event.message_id.as_deref(),
        caps,
        settings: &settings,
        vars: &|| vars::base(&sender, role, Some(chat), &settings, now),
        window: admit.window(),
        blacklisted: blacklisted.is_some(),
    };
    let Some(mut response) = moderation::respond(rules, &scripts.templates, case) else {
        moderator.keep(chat, user, member);
        return Screened::default();
    };
    let (done, posts) =
        carry_out_response(state, event, &mut response, &verdict, &before, admit, caps).await;
    let ban = response.blacklist.then(|| BlacklistEntry {
        user_id: user.to_owned(),
        name: event.from.name.clone(),
        chat_id: chat.clone(),
        check: response.worst.check.clone(),
        reason: response.worst.reason.clone(),
        at: now,
    });
    if let Some(entry) = &ban {
        moderator.ban(entry.clone());
    }
    let fold_into = match admit {
        notices::Admit::Fold { since, .. } if !response.own_row => Some(Fold { head: since }),
        _ => None,
    };
    log_line(event, &response, fold_into.is_some(), &done);
    let entry = log_entry(
        event,
        chat,
        &sender.name,
        &message,
        (&response, verdict.probation),
        done,
        now,
    );
    let record = member.record.clone();
    moderator.keep(chat, user, member);
    Screened {
        posts,
        acted: response.acted,
        writes: vec![ModerationWrite {
            chat: chat.clone(),
            user: user.to_owned(),
            standing: Some(record),
            entry,
            ban,
            fold_into,
        }],
    }
}

/// The sender, named. A bot account's events carry no name: notices and the log use the one the
/// store knows (not for a folded repeat, which posts nothing and whose row has it already).
async fn named_sender(
    state: &Services,
    event: &Event,
    chat: &ChatId,
    admit: notices::Admit,
) -> crate::domain::Sender {
    let name = match (event.from.name.is_empty(), admit) {
        (true, notices::Admit::Post { .. }) => {
            requests::member_name(state, chat, &event.from.user_id).await
        }
        _ => event.from.name.clone(),
    };
    crate::domain::Sender {
        name,
        ..event.from.clone()
    }
}

/// A message as moderation reads it: its text prepared for the checks, its parts' channel types,
/// and the sender's recent activity before it.
struct Heard<'a> {
    text: &'a str,
    prepared: &'a Prepared,
    parts: &'a [&'a str],
    before: &'a activity::Before,
}

/// The engine's verdict on `message` from a member with `role` and the standing `member` has
/// (images are searched for QR codes only when a check would look at them).
#[allow(clippy::too_many_arguments)]
async fn judge(
    state: &Services,
    event: &Event,
    rules: &ModerationRules,
    place: Place<'_>,
    role: crate::domain::Role,
    member: &MemberState,
    message: &Heard<'_>,
    now: DateTime<Utc>,
) -> Verdict {
    let user = event.from.user_id.as_str();
    let warnings: Vec<DateTime<Utc>> = member
        .record
        .warnings
        .iter()
        .filter_map(|&t| DateTime::from_timestamp(t, 0))
        .collect();
    let elsewhere: Vec<(ChatId, DateTime<Utc>)> = message
        .before
        .elsewhere
        .iter()
        .map(|s| (s.chat.clone(), s.at))
        .collect();
    let standing = Standing {
        role,
        approved: member.record.approved,
        messages: member.messages,
        clean: member.messages.saturating_sub(member.record.clean_from),
        first_seen: member.first_seen,
        warnings: &warnings,
    };
    let activity = Activity {
        member_messages: &message.before.member_messages,
        same_text: &message.before.same_text,
        elsewhere: &elsewhere,
        raid_until: message.before.raid_until,
    };
    let qr_codes = if message.parts.contains(&"image")
        && moderation::wants_qr_codes(rules, place, &standing, &activity, user, now)
    {
        qr::codes_in(state, &state.moderator.http, event).await
    } else {
        Vec::new()
    };
    let content = Content {
        prepared: message.prepared,
        parts: message.parts,
        qr_codes: &qr_codes,
    };
    moderation::judge(rules, place, &content, &standing, &activity, user, now)
}

/// Performs a response's actions and what goes with them (a campaign's copies elsewhere);
/// returns what happened, for the log, and the posts to make.
async fn carry_out_response(
    state: &Services,
    event: &Event,
    response: &mut Response,
    verdict: &Verdict,
    before: &activity::Before,
    admit: notices::Admit,
    caps: Capabilities,
) -> (Vec<String>, Vec<Post>) {
    for note in &response.notes {
        warn!(bot = %event.bot, chat = ?event.chat_id(), "{note}");
    }
    // Performed here; the response keeps what the log needs.
    let actions = std::mem::take(&mut response.actions);
    let (mut done, posts) = carry_out(state, event, actions, caps, &response.warned(verdict)).await;
    match admit {
        notices::Admit::Post { folded: 0 } => {}
        notices::Admit::Post { folded } => {
            done.push(format!("{folded} earlier findings were folded"));
        }
        notices::Admit::Fold { since, nth } => {
            debug!(chat = ?event.chat_id(), user = %event.from.user_id, check = %response.worst.check, nth,
                "moderation posts folded");
            done.push(format!(
                "admin notice folded into the one of {} (#{nth})",
                since.format("%H:%M:%S")
            ));
        }
    }
    if response.dry_run {
        done.push(format!("dry run: would {}", response.outcome.as_str()));
    }
    if response.delete_copies {
        let deleted = delete_copies(state, &before.elsewhere).await;
        if deleted > 0 {
            done.push(format!("deleted {deleted} copies in other groups"));
        }
    }
    (done, posts)
}

/// What moderation did, in the service's log: a repeat counted on its window's row (`folded`)
/// logs at debug — at info it would be a line per flood message.
fn log_line(event: &Event, response: &Response, folded: bool, done: &[String]) {
    let (chat, user, check, action) = (
        event.chat_id(),
        event.from.user_id.as_str(),
        &response.worst.check,
        response.outcome.as_str(),
    );
    if folded {
        debug!(bot = %event.bot, chat = ?chat, user, check = %check, action, outcome = ?done,
            "moderation (folded repeat)");
    } else {
        info!(bot = %event.bot, chat = ?chat, user, check = %check, action,
            dry_run = response.dry_run, outcome = ?done, "moderation");
    }
}

/// The moderation log's row for a finding in a message.
fn log_entry(
    event: &Event,
    chat: &ChatId,
    name: &str,
    message: &Heard<'_>,
    (response, probation): (&Response, bool),
    done: Vec<String>,
    now: DateTime<Utc>,
) -> LogEntry {
    LogEntry {
        id: 0,
        at: now,
        chat_id: chat.clone(),
        user_id: event.from.user_id.clone(),
        name: name.to_owned(),
        message_id: event.message_id.clone(),
        text: shorten(message.text, LOG_TEXT_CHARS),
        normalized: shorten(&message.prepared.canonical, LOG_TEXT_CHARS),
        check: response.worst.check.clone(),
        kind: response.worst.kind.to_owned(),
        reason: response.worst.reason.clone(),
        evidence: response.evidence.clone(),
        action: response.outcome.as_str().to_owned(),
        dry_run: response.dry_run,
        probation,
        outcome: done,
        by: String::new(),
        repeats: 0,
        last_at: None,
        review: None,
    }
}

/// Performs moderation's (degraded) actions on `event`'s group; returns what happened, for the
/// log (`warned` names a warning post), and the posts to make.
pub(super) async fn carry_out(
    state: &Services,
    event: &Event,
    actions: Vec<Action>,
    caps: Capabilities,
    warned: &str,
) -> (Vec<String>, Vec<Post>) {
    let mut done = Vec::new();
    let mut posts = Vec::new();
    for action in actions {
        match action {
            Action::DeleteMessage { message_id } => {
                let deleted = crate::runtime::inbound::delete(state, event, &message_id).await;
                done.push(if deleted { "deleted" } else { "not deleted" }.to_owned());
            }
            Action::RemoveMember {
                user_id,
                name,
                reason,
            } => {
                let target = (user_id.as_str(), name.as_str());
                let (removal, post) =
                    crate::runtime::inbound::remove(state, event, target, &reason, caps, true)
                        .await;
                done.push(removal.map_or("removal not attempted".into(), |r| {
                    format!("removal {}", r.as_str())
                }));
                if let Some(post) = post {
                    done.push("admins told".into());
                    posts.push(post);
                }
            }
            Action::Post { message, purpose } => {
                done.push(match purpose {
                    "notify_admins" => "admins told".to_owned(),
                    "moderation_warning" => warned.to_owned(),
                    other => format!("posted {other}"),
                });
                posts.push(Post { message, purpose });
            }
            other => warn!(action = ?other, "moderation planned an action it does not perform"),
        }
    }
    (done, posts)
}

/// The finding for a blacklisted member's first message (or join) in a group, naming the group
/// they were removed from.
pub(super) fn blacklist_finding(state: &Services, entry: &BlacklistEntry) -> Finding {
    let group = state.directory.get(&entry.chat_id);
    moderation::blacklist_finding(&entry.reason, &entry.chat_id, &group.name)
}

/// Deletes the earlier copies of a campaign in other groups (through the accounts that saw
/// them); returns how many went.
async fn delete_copies(state: &Services, sightings: &[Sighting]) -> usize {
    let mut deleted = 0;
    for s in sightings {
        let (Some(message_id), Some(key)) = (&s.message_id, &s.via) else {
            continue;
        };
        if !state.accounts.offers(key, Ability::DeleteMessage) {
            continue;
        }
        match state.accounts.delete_message(key, message_id).await {
            Ok(()) => deleted += 1,
            Err(e) => warn!(chat = %s.chat, message_id, error = %e, "campaign copy not deleted"),
        }
    }
    deleted
}

/// Writes a member's standing, a log entry and a blacklist entry in one transaction (for
/// requests answered on their own; what is found in a message goes with the event's batch).
async fn persist(
    state: &Services,
    chat: &ChatId,
    user: &str,
    record: Option<StandingRecord>,
    entry: LogEntry,
    ban: Option<BlacklistEntry>,
) {
    let store = state.store.clone();
    let (chat, user) = (chat.clone(), user.to_owned());
    let written = tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            if let Some(record) = &record {
                tx.put_standing(&chat, &user, record)?;
            }
            if let Some(ban) = &ban {
                tx.blacklist_add(ban)?;
            }
            tx.log_moderation(&entry)
        })
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => error!(error = %e, "moderation log not written"),
        Err(e) => error!(error = %e, "moderation log task failed"),
    }
}

/// A log entry that is not about a message.
pub(super) fn system_entry(
    chat: &ChatId,
    user: &str,
    check: &str,
    now: DateTime<Utc>,
    evidence: String,
) -> LogEntry {
    LogEntry {
        id: 0,
        at: now,
        chat_id: chat.clone(),
        user_id: user.to_owned(),
        name: String::new(),
        message_id: None,
        text: String::new(),
        normalized: String::new(),
        check: check.to_owned(),
        kind: check.to_owned(),
        reason: String::new(),
        evidence,
        action: Severity::Notify.as_str().into(),
        dry_run: false,
        probation: false,
        outcome: Vec::new(),
        by: String::new(),
        repeats: 0,
        last_at: None,
        review: None,
    }
}
