//! Simulating a message: what the bot would do if `from` said `text` in a group, from the
//! group's real view (settings, members, counters) and the sender's standing, on the group's own
//! channel, explained in words by the engine ([`crate::engine::simulate`]). Nothing is changed
//! or sent. The running service answers it at `POST /api/v1/simulate`; `trumpet simulate` asks
//! the service, or reads the store itself when the service is not running.

use chrono::{DateTime, Utc};

use crate::domain::{
    AccountKey, BotId, Capabilities, ChatId, Conversation, Event, EventKind, GroupSettings, Sender,
};
use crate::engine::moderation::Standing;
use crate::engine::{GroupStats, GroupView, MemberBrief, Scripts, normalize::normalize};
use crate::runtime::accounts::{Ability, BotAccounts};
use crate::store::{GroupRecord, Store, StoreError};

/// What to simulate.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulation {
    /// The group's chat id.
    pub group: String,
    /// The sender's user id.
    pub from: String,
    pub text: String,
    /// Whether the message @-mentions the bot (the group robot hears nothing else).
    #[serde(default = "yes")]
    pub mention: bool,
}

fn yes() -> bool {
    true
}

/// Where the simulation reads from.
pub struct Sources<'a> {
    /// The store, when it can be read (`None`: no store yet).
    pub store: Option<&'a Store>,
    /// The group's settings as the service holds them; read from the store when `None`.
    pub settings: Option<GroupSettings>,
    pub scripts: &'a Scripts,
    /// The connected bot accounts (the running service), to say what their channel can do.
    pub accounts: Option<&'a dyn BotAccounts>,
    /// Whether a keyword rule is cooling down in the group (the running service's).
    pub cooling: &'a dyn Fn(&str) -> bool,
    /// The bot a group the store does not know is simulated for.
    pub default_bot: BotId,
}

/// The lines describing what the bot would do. Blocking: it reads the store.
pub fn simulate(
    sources: &Sources<'_>,
    request: &Simulation,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let chat = ChatId::new(request.group.as_str());
    let mut lines = Vec::new();
    let group = match sources.store {
        Some(store) => store.group(&chat)?,
        None => {
            lines.push(format!("group   {chat}: no store yet"));
            None
        }
    };
    let settings = match (&sources.settings, sources.store) {
        (Some(settings), _) => settings.clone(),
        (None, Some(store)) => store.settings(&chat)?,
        (None, None) => GroupSettings::default(),
    };
    let mut known = Known {
        sender: Sender {
            user_id: request.from.clone(),
            ..Sender::default()
        },
        ..Known::default()
    };
    if let (Some(store), Some(g)) = (sources.store, &group) {
        known = read_known(
            store,
            g,
            &settings,
            sources.scripts,
            request,
            now,
            &mut lines,
        )?;
    } else if sources.store.is_some() {
        lines.push(format!(
            "group   {chat}: not in the store (simulated with default settings)"
        ));
    }
    let caps = capabilities(group.as_ref(), sources.accounts);
    let robot = group.as_ref().is_none_or(|g| g.account.is_none());
    if group.as_ref().is_some_and(GroupRecord::is_push_only) {
        lines.push(
            "note    a push-only group: its members' messages never reach the bot; this is what it would do if they did"
                .into(),
        );
    }
    let stripped = crate::wire::wecom::robot::xml::strip_robot_mention(&request.text, true);
    lines.push(format!(
        "text    {stripped:?} (normalised {:?}){}",
        normalize(stripped),
        match (request.mention, robot) {
            (true, _) => ", @-mentions the bot",
            (false, false) => ", no @-mention (the bot account hears every message)",
            (false, true) => ", no @-mention",
        }
    ));
    if robot && !request.mention {
        lines.push("decided nothing: the group robot hears only messages that @-mention it".into());
        return Ok(lines);
    }
    let event = Event {
        bot: group
            .as_ref()
            .map_or_else(|| sources.default_bot.clone(), |g| g.bot.clone()),
        msg_id: "simulated".into(),
        conversation: Conversation::Group(chat),
        from: known.sender,
        webhook_url: None,
        account: group.as_ref().and_then(|g| g.account.clone()),
        message_id: None,
        kind: EventKind::Text {
            text: stripped.to_owned(),
        },
        mentioned: request.mention,
        received_at: now,
    };
    let warnings: Vec<DateTime<Utc>> = known
        .record
        .warnings
        .iter()
        .filter_map(|&t| DateTime::from_timestamp(t, 0))
        .collect();
    let standing = Standing {
        role: sources.scripts.commands.role_of(&settings, &request.from),
        approved: known.record.approved,
        messages: known.messages,
        clean: known.messages.saturating_sub(known.record.clean_from),
        first_seen: known.first_seen,
        warnings: &warnings,
    };
    let view = GroupView {
        settings: &settings,
        recent: &[],
        stats: known.stats.as_ref(),
        members: &known.members,
        cooling: sources.cooling,
        can_remove_members: caps.can_remove_members,
        can_message_privately: caps.can_message_privately,
    };
    lines.extend(crate::engine::simulate::explain(
        &event,
        &view,
        sources.scripts,
        &standing,
        caps,
        now,
    ));
    Ok(lines)
}

/// What the store knows of the group and the sender.
#[derive(Default)]
struct Known {
    stats: Option<GroupStats>,
    members: Vec<MemberBrief>,
    record: crate::store::StandingRecord,
    /// The sender, named as the group's member list has them.
    sender: Sender,
    /// Messages the sender sent here.
    messages: u64,
    first_seen: Option<DateTime<Utc>>,
}

/// Reads what `store` knows of `group` and of the request's sender, describing both in `lines`.
fn read_known(
    store: &Store,
    g: &GroupRecord,
    settings: &GroupSettings,
    scripts: &Scripts,
    request: &Simulation,
    now: DateTime<Utc>,
    lines: &mut Vec<String>,
) -> Result<Known, StoreError> {
    let chat = &g.chat_id;
    let mut known = Known {
        sender: Sender {
            user_id: request.from.clone(),
            ..Sender::default()
        },
        ..Known::default()
    };
    lines.push(format!(
        "group   {chat}{}: {}, {}, {} members seen, {} messages, tags [{}]",
        match settings.name.is_empty() {
            true => String::new(),
            false => format!(" ({})", settings.name),
        },
        format!("{:?}", g.status).to_lowercase(),
        channel_words(g),
        g.members_seen,
        g.messages,
        settings.tags.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    let today = store.daily(chat, now)?;
    known.stats = Some(GroupStats {
        members_seen: g.members_seen,
        messages: g.messages,
        today_messages: today.messages,
        today_speakers: today.speakers,
        members: store.members_listed(g)?,
        sees_every_message: g.account.is_some(),
    });
    known.members = store
        .members(chat)?
        .into_iter()
        .map(|m| MemberBrief {
            user_id: m.user_id,
            name: m.name,
        })
        .collect();
    known.record = store.standing(chat, &request.from)?;
    match store.member(chat, &request.from)? {
        Some(m) => {
            lines.push(format!(
                "sender  {}: {}, {} messages, last seen {}",
                request.from,
                scripts.commands.role_of(settings, &request.from).title(),
                m.message_count,
                m.last_seen
            ));
            known.sender.name = m.name;
            known.sender.alias = m.alias;
            known.messages = m.message_count;
            known.first_seen = Some(m.first_seen);
        }
        None => lines.push(format!(
            "sender  {}: not seen in this group yet",
            request.from
        )),
    }
    Ok(known)
}

/// The group's channel, in words.
fn channel_words(group: &GroupRecord) -> &'static str {
    if group.account.is_some() {
        "through a bot account"
    } else if group.is_push_only() {
        "push-only"
    } else {
        "through the group robot"
    }
}

/// What the group's channel can do: a bot account as its implementation says (all when no
/// service is asked), the group robot otherwise.
fn capabilities(group: Option<&GroupRecord>, accounts: Option<&dyn BotAccounts>) -> Capabilities {
    let Some((group, account)) = group.and_then(|g| g.account.as_ref().map(|a| (g, a))) else {
        return crate::wire::wecom::robot::CAPABILITIES;
    };
    let key = AccountKey {
        bot: group.bot.clone(),
        user_id: account.clone(),
    };
    match accounts {
        Some(accounts) => crate::wire::onebot::capabilities(
            accounts.offers(&key, Ability::RemoveMember),
            accounts.offers(&key, Ability::DeleteMessage),
        ),
        None => crate::wire::onebot::capabilities(true, true),
    }
}
