//! Moderation, the stateful part: for each group message, what the pure checks
//! (`engine::moderation`) need — the member's standing (cached, from the store), recent activity
//! ([`activity`]), the operator-wide blacklist — then the verdict carried out: the message
//! deleted, the warning posted, the member removed (confirmed by the member list), the admins
//! told, and the moderation log written with how each step went. Joins feed raid detection and
//! keep blacklisted members out. People's requests (pardon, trust, report, appeal) are in
//! [`requests`].

pub mod activity;
pub mod notices;
pub mod qr;
pub mod requests;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, Utc};
use minijinja::context;
use tracing::{debug, error, info, warn};

use crate::domain::AccountKey;
use crate::domain::{Action, Capabilities, ChatId, Event, EventKind, MixedItem, OutMessage};
use crate::engine::moderation::{
    self, Activity, Content, Finding, ModerationRules, Prepared, Severity, Standing, Verdict,
};
use crate::engine::scope::Place;
use crate::engine::{self, vars};
use crate::runtime::Services;
use crate::runtime::accounts::Ability;
use crate::runtime::pipeline::Post;
use crate::store::{
    BlacklistEntry, Fold, LogEntry, ModerationWrite, StandingRecord, Store, StoreError,
};
use activity::{Sighting, Tracker};

/// The longest text kept in a log entry, in characters.
const LOG_TEXT_CHARS: usize = 500;
/// The longest quote of the message in a notice to the admins.
const NOTICE_TEXT_CHARS: usize = 60;

/// A member as moderation knows them in one group.
#[derive(Debug, Clone, Default)]
struct MemberState {
    /// Messages sent here (as the store counted them when first loaded, plus those since).
    messages: u64,
    first_seen: Option<DateTime<Utc>>,
    record: StandingRecord,
    /// Their first message here was checked against the blacklist.
    blacklist_checked: bool,
    /// When the cache last kept this entry.
    kept_at: Option<DateTime<Utc>>,
}

/// Members cached before idle ones are dropped (they are read from the store again when they
/// speak; only `blacklist_checked` is lost, so a blacklisted member dropped from the cache is
/// checked once more).
const MAX_CACHED_MEMBERS: usize = 50_000;
/// Entries idle this long go first when the cache is full.
const CACHE_IDLE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

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

/// Where images may be fetched from (see [`crate::outbound`]).
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    /// `wecom.media_hosts`: the robot's image URLs.
    pub media: crate::outbound::HostList,
    /// `onebot.file_hosts`: URLs a bot account's `get_file` answers with.
    pub files: crate::outbound::HostList,
}

pub struct Moderator {
    /// Fetches images by URL (QR codes in the robot's images), redirects only to listed hosts.
    http: reqwest::Client,
    fetch: FetchPolicy,
    tracker: Mutex<Tracker>,
    members: Mutex<HashMap<(ChatId, String), MemberState>>,
    blacklist: RwLock<HashMap<String, BlacklistEntry>>,
    /// One warning and one admin notice per member, check and outcome in a window.
    notices: notices::Coalescer,
}

impl Moderator {
    /// Loads the blacklist from `store`; images are fetched only where `fetch` allows.
    pub fn load(store: &Store, fetch: FetchPolicy) -> Result<Self, StoreError> {
        let mut hosts = fetch.media.clone();
        hosts.extend(&fetch.files);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(hosts.redirect_policy(3, "wecom.media_hosts / onebot.file_hosts"))
            .build()
            .map_err(|e| StoreError::Db(format!("the image client could not be built: {e}")))?;
        let blacklist = store
            .blacklist()?
            .into_iter()
            .map(|e| (e.user_id.clone(), e))
            .collect();
        Ok(Self {
            http,
            fetch,
            tracker: Mutex::default(),
            members: Mutex::default(),
            blacklist: RwLock::new(blacklist),
            notices: notices::Coalescer::default(),
        })
    }

    fn blacklisted(&self, user: &str) -> Option<BlacklistEntry> {
        self.blacklist
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }

    /// Forgets what is cached about `user` in `chat` (after a change made elsewhere).
    fn forget(&self, chat: &ChatId, user: &str) {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(chat.clone(), user.to_owned()));
    }

    /// The member's state, from the cache or the store.
    async fn member(&self, store: &Store, chat: &ChatId, user: &str) -> MemberState {
        let key = (chat.clone(), user.to_owned());
        if let Some(m) = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return m.clone();
        }
        // Two point reads, microseconds from redb's cache: done in place. A hop through the
        // blocking pool costs more than the reads (two thread wake-ups on the request's path),
        // and a newcomer's first message — most messages in a large community — pays it.
        let read = store
            .member(chat, user)
            .and_then(|member| Ok((member, store.standing(chat, user)?)));
        match read {
            Ok((member, record)) => MemberState {
                messages: member.as_ref().map_or(0, |m| m.message_count),
                first_seen: member.map(|m| m.first_seen),
                record,
                blacklist_checked: false,
                kept_at: None,
            },
            Err(e) => {
                error!(chat = %chat, user, error = %e, "member standing unreadable; checked as new");
                MemberState::default()
            }
        }
    }

    fn keep(&self, chat: &ChatId, user: &str, mut member: MemberState) {
        let now = Utc::now();
        member.kept_at = Some(now);
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if members.len() >= MAX_CACHED_MEMBERS {
            members.retain(|_, m| m.kept_at.is_some_and(|at| now - at < CACHE_IDLE));
            if members.len() >= MAX_CACHED_MEMBERS {
                members.clear();
            }
        }
        members.insert((chat.clone(), user.to_owned()), member);
    }
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

fn shorten(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().nth(chars).is_some() {
        out.push('…');
    }
    out
}

/// What an outcome means, for the admins.
fn describe(outcome: Severity, verdict: &Verdict) -> String {
    match outcome {
        Severity::Log => "仅记录".into(),
        Severity::Notify => "提醒管理员".into(),
        Severity::Delete => "撤回".into(),
        Severity::Warn => format!(
            "撤回并警告（第 {}/{} 次）",
            verdict.warnings, verdict.settings.warn_limit
        ),
        Severity::Remove => "撤回并移出本群".into(),
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
    let place = Place {
        chat: Some(chat),
        settings: &settings,
    };
    let role = scripts.commands.role_of(&settings, user);
    let mut member = moderator.member(&state.store, chat, user).await;
    let prepared = Prepared::new(&text, &rules.variants);
    let before = moderator
        .tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .message(
            Sighting::new(
                chat,
                user,
                now,
                event.message_id.clone(),
                event.account.as_ref().map(|account| AccountKey {
                    bot: event.bot.clone(),
                    user_id: account.clone(),
                }),
            ),
            // A question to the bot is asked again and in several groups by design (the same
            // question on a filing deadline): repeats and campaigns count only other messages.
            if event.mentioned {
                ""
            } else {
                &prepared.canonical
            },
            rules.longest_window(),
            now,
        );
    let warnings: Vec<DateTime<Utc>> = member
        .record
        .warnings
        .iter()
        .filter_map(|&t| DateTime::from_timestamp(t, 0))
        .collect();
    let elsewhere: Vec<(ChatId, DateTime<Utc>)> = before
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
        member_messages: &before.member_messages,
        same_text: &before.same_text,
        elsewhere: &elsewhere,
        raid_until: before.raid_until,
    };
    let qr_codes = if parts.contains(&"image")
        && moderation::wants_qr_codes(rules, place, &standing, &activity, user, now)
    {
        qr::codes_in(state, &moderator.http, event).await
    } else {
        Vec::new()
    };
    let content = Content {
        prepared: &prepared,
        parts: &parts,
        qr_codes: &qr_codes,
    };
    let mut verdict = moderation::judge(rules, place, &content, &standing, &activity, user, now);
    member.messages += 1;
    member.first_seen.get_or_insert(now);
    let already_banned = blacklisted.is_some();
    if let Some(entry) = blacklisted
        && !verdict.trusted
        && !member.blacklist_checked
    {
        verdict
            .findings
            .push(blacklist_finding(&entry, &state.directory));
    }
    member.blacklist_checked = true;
    if verdict.findings.is_empty() {
        moderator.keep(chat, user, member);
        return Screened::default();
    }
    // A finding ends the clean streak; a warning the engine gave is remembered for the window.
    member.record.clean_from = member.messages;
    if verdict.new_warning && !verdict.settings.dry_run {
        let window = verdict.settings.warn_window.as_secs() as i64;
        member
            .record
            .warnings
            .retain(|&t| now.timestamp() - t < window);
        member.record.warnings.push(now.timestamp());
    }
    let outcome = verdict.outcome().unwrap_or(Severity::Log);
    let worst = verdict.worst().cloned().expect("findings are not empty");
    // A message the channel cannot delete is left to the admins, who are told so.
    let deletable = event
        .message_id
        .as_deref()
        .filter(|_| caps.can_delete_messages);
    let deleted = deletable.is_some() && outcome >= Severity::Delete && !verdict.settings.dry_run;
    // Decided before the notice is rendered: a folded notice costs no template and no post.
    let admit = match verdict.settings.dry_run {
        true => notices::Admit::Post { folded: 0 },
        false => moderator
            .notices
            .admit(chat, user, &worst.check, outcome.as_str(), now),
    };
    let folded = matches!(admit, notices::Admit::Fold { .. });
    // A bot account's events carry no name: notices and the log use the one the store knows
    // (not for a folded repeat, which posts nothing and whose row has it already).
    let name = match (event.from.name.is_empty(), folded) {
        (true, false) => requests::member_name(state, chat, user).await,
        _ => event.from.name.clone(),
    };
    let sender = crate::domain::Sender {
        name: name.clone(),
        ..event.from.clone()
    };
    let vars = || {
        context! {
            ..vars::base(&sender, role, Some(chat), &settings, now),
            ..context! {
                reason => &worst.reason,
                rule => &worst.check,
                evidence => &worst.evidence,
                warnings => verdict.warnings,
                limit => verdict.settings.warn_limit,
                action => describe(outcome, &verdict),
                text => shorten(&text, NOTICE_TEXT_CHARS),
                deleted => deleted,
            }
        }
    };
    let warning = (outcome == Severity::Warn)
        .then_some(rules.warning.as_ref())
        .flatten()
        .and_then(|m| {
            m.push(
                &scripts.templates,
                vars,
                std::slice::from_ref(&event.from.user_id),
            )
            .map_err(|e| error!(error = %e, "the moderation warning did not render"))
            .ok()
        });
    let mut notice = match folded {
        true => String::new(),
        false => notice_text(
            rules,
            &scripts.templates,
            vars,
            &worst,
            outcome,
            &verdict,
            &sender,
        ),
    };
    if deletable.is_none() && outcome >= Severity::Delete && !folded {
        notice.push_str("（机器人无法撤回这条消息，请管理员处理）");
    }
    let actions = moderation::plan(&verdict, &sender, deletable, warning, notice);
    let (mut actions, notes) = engine::degrade(actions, caps, &settings);
    for note in notes {
        warn!(bot = %event.bot, chat = %chat, "{note}");
    }
    if folded {
        // The admins were told about this member, check and outcome in this window already.
        actions.retain(|a| {
            !matches!(a, Action::NotifyAdmins { .. })
                && !matches!(a, Action::Post { purpose, .. } if *purpose == "notify_admins")
        });
    }
    let warned = format!(
        "warned {}/{}",
        verdict.warnings, verdict.settings.warn_limit
    );
    let (mut done, mut posts) = carry_out(state, event, actions, caps, &warned).await;
    note_folding(admit, chat, user, &worst.check, &mut posts, &mut done);
    let dry_run = verdict.settings.dry_run;
    if dry_run {
        done.push(format!("dry run: would {}", outcome.as_str()));
    }
    let acted = !dry_run && outcome >= Severity::Delete;
    if acted && worst.kind == "campaign" {
        let deleted = delete_copies(state, &before.elsewhere).await;
        if deleted > 0 {
            done.push(format!("deleted {deleted} copies in other groups"));
        }
    }
    // Once on the blacklist, a member's later removals add nothing to it (a flooder's every
    // message would otherwise rewrite the same entry).
    let ban =
        (acted && outcome == Severity::Remove && worst.kind != "blacklist" && !already_banned)
            .then(|| BlacklistEntry {
                user_id: user.to_owned(),
                name: event.from.name.clone(),
                chat_id: chat.clone(),
                check: worst.check.clone(),
                reason: worst.reason.clone(),
                at: now,
            });
    if let Some(entry) = &ban {
        moderator
            .blacklist
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.user_id.clone(), entry.clone());
    }
    // A folded repeat is counted on its window's log row; at info it would be a line per flood
    // message.
    if folded {
        debug!(bot = %event.bot, chat = %chat, user, check = %worst.check,
            action = outcome.as_str(), outcome = ?done, "moderation (folded repeat)");
    } else {
        info!(bot = %event.bot, chat = %chat, user, check = %worst.check,
            action = outcome.as_str(), dry_run, outcome = ?done, "moderation");
    }
    let entry = LogEntry {
        id: 0,
        at: now,
        chat_id: chat.clone(),
        user_id: user.to_owned(),
        name,
        message_id: event.message_id.clone(),
        text: shorten(&text, LOG_TEXT_CHARS),
        normalized: shorten(&prepared.canonical, LOG_TEXT_CHARS),
        check: worst.check.clone(),
        kind: worst.kind.to_owned(),
        reason: worst.reason.clone(),
        evidence: findings_evidence(&verdict.findings),
        action: outcome.as_str().to_owned(),
        dry_run,
        outcome: done,
        by: String::new(),
        repeats: 0,
        last_at: None,
    };
    // Folded into the notice of this window, a repeat is counted on the window's log row too —
    // unless it was a step of its own: a warning (the 2nd of 3 is news) or a first ban.
    let fold_into = match admit {
        notices::Admit::Fold { since, .. } if outcome != Severity::Warn && ban.is_none() => {
            Some(Fold { head: since })
        }
        _ => None,
    };
    let record = member.record.clone();
    moderator.keep(chat, user, member);
    Screened {
        posts,
        acted,
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

/// Performs moderation's (degraded) actions on `event`'s group; returns what happened, for the
/// log (`warned` names a warning post), and the posts to make.
async fn carry_out(
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

/// What coalescing did with a finding's posts ([`notices`]), for the log (`done`) and, after
/// folded findings, for the admins (the notice says how many there were).
fn note_folding(
    admit: notices::Admit,
    chat: &ChatId,
    user: &str,
    check: &str,
    posts: &mut [Post],
    done: &mut Vec<String>,
) {
    match admit {
        notices::Admit::Post { folded: 0 } => {}
        notices::Admit::Post { folded } => {
            done.push(format!("{folded} earlier findings were folded"));
            let note = format!("（此前 10 分钟内同类情况 {folded} 次，已合并未逐条提醒）");
            for post in posts.iter_mut().filter(|p| p.purpose == "notify_admins") {
                if let OutMessage::Text { content, .. } | OutMessage::Markdown { content } =
                    &mut post.message
                {
                    content.push_str(&note);
                }
            }
        }
        notices::Admit::Fold { since, nth } => {
            debug!(chat = %chat, user, check, nth, "moderation posts folded");
            done.push(format!(
                "admin notice folded into the one of {} (#{nth})",
                since.format("%H:%M:%S")
            ));
        }
    }
}

/// The finding for a blacklisted member's first message in a group.
fn blacklist_finding(
    entry: &BlacklistEntry,
    directory: &crate::runtime::groups::Directory,
) -> Finding {
    // The group by its name where one is known: operators know their groups by name.
    let group = directory.get(&entry.chat_id);
    let group = match group.name.trim() {
        "" => entry.chat_id.to_string(),
        name => format!("「{name}」"),
    };
    Finding {
        check: "blacklist".into(),
        kind: "blacklist",
        severity: Severity::Remove,
        reason: "黑名单成员".into(),
        evidence: format!("曾因「{}」被移出群{group}", entry.reason),
    }
}

/// Every finding's evidence, for the log (`check: evidence; …`).
fn findings_evidence(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("{}: {}", f.check, f.evidence))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The notice to the admins, from the operator's template or a built-in one.
fn notice_text(
    rules: &ModerationRules,
    templates: &crate::engine::template::Templates,
    vars: impl FnOnce() -> minijinja::Value,
    worst: &Finding,
    outcome: Severity,
    verdict: &Verdict,
    sender: &crate::domain::Sender,
) -> String {
    let rendered = rules.admin_notice.as_ref().and_then(|m| {
        templates
            .render(&m.body, vars)
            .map_err(|e| error!(error = %e, "the moderation notice did not render"))
            .ok()
    });
    rendered.unwrap_or_else(|| {
        format!(
            "群管理：{}{}。规则：{}；依据：{}；处理：{}。",
            vars::name_and_id(&sender.name, &sender.user_id),
            worst.reason,
            worst.check,
            worst.evidence,
            describe(outcome, verdict)
        )
    })
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

/// A member joined: counts toward raid detection (the admins are told when a raid starts) and
/// keeps blacklisted members out (`acted`: they are not welcomed).
pub async fn screen_join(
    state: &Services,
    event: &Event,
    caps: Capabilities,
    now: DateTime<Utc>,
) -> Screened {
    let Some(chat) = event.chat_id() else {
        return Screened::default();
    };
    let scripts = state.scripts.current();
    let rules = &scripts.moderation;
    let moderator = &state.moderator;
    let mut posts = Vec::new();
    let mut writes = Vec::new();
    let raid = moderator
        .tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .join(chat, rules.raid, now);
    if let (Some(joins), Some(r)) = (raid, rules.raid) {
        let text = format!(
            "⚠️ 冲群警报：{} 秒内有 {joins} 人入群。接下来 {} 分钟，所有未受信任成员的消息按新成员标准从严检查。",
            r.within.as_secs(),
            r.lasts.as_secs() / 60
        );
        warn!(chat = %chat, joins, "raid mode");
        posts.extend(crate::runtime::inbound::notice_post(
            state, chat, text, caps,
        ));
        let entry = system_entry(
            chat,
            &event.from.user_id,
            "raid",
            now,
            format!("{joins} joins"),
        );
        writes.push(ModerationWrite::entry(chat, &event.from.user_id, entry));
    }
    let user = event.from.user_id.as_str();
    let settings = state.directory.get(chat);
    let trusted = scripts.commands.role_of(&settings, user) > crate::domain::Role::Member
        || rules.approved.contains(user);
    if let Some(ban) = moderator.blacklisted(user)
        && !trusted
    {
        let finding = blacklist_finding(&ban, &state.directory);
        let reason = format!("黑名单成员：{}", finding.evidence);
        let (actions, _) = engine::degrade(
            vec![Action::RemoveMember {
                user_id: user.to_owned(),
                name: event.from.name.clone(),
                reason: reason.clone(),
            }],
            caps,
            &settings,
        );
        let (done, removal_posts) = carry_out(state, event, actions, caps, "").await;
        posts.extend(removal_posts);
        let mut member = moderator.member(&state.store, chat, user).await;
        member.blacklist_checked = true;
        moderator.keep(chat, user, member);
        let mut entry = system_entry(chat, user, "blacklist", now, finding.evidence);
        entry.name = event.from.name.clone();
        entry.reason = finding.reason;
        entry.action = Severity::Remove.as_str().into();
        entry.outcome = done;
        writes.push(ModerationWrite::entry(chat, user, entry));
        return Screened {
            posts,
            acted: true,
            writes,
        };
    }
    Screened {
        posts,
        acted: false,
        writes,
    }
}

/// A log entry that is not about a message.
fn system_entry(
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
        outcome: Vec::new(),
        by: String::new(),
        repeats: 0,
        last_at: None,
    }
}
