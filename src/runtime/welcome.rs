//! The welcome runtime: gathers reported joins per group, waits for each group's batch to be due
//! (the pure rules are in [`crate::engine::welcome`]), then posts one welcome through the group's
//! webhook and records who was welcomed, so that a rejoin within the quiet period is not welcomed
//! again — also after a restart.
//!
//! Joins waiting for their batch are held in memory: a crash within the batch window loses that
//! batch's welcome (logged at shutdown when joins were waiting).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::domain::{Action, ChatId, Joiner};
use crate::engine::degrade;
use crate::engine::scope::Place;
use crate::engine::welcome::{self, GroupWelcomes};
use crate::outbox::Outbox;
use crate::runtime::groups::Directory;
use crate::scripts::live::LiveScripts;
use crate::store::{GroupStatus, NewSend, Store, StoreError};

/// Joins reported for one group.
#[derive(Debug)]
struct Joins {
    chat: ChatId,
    joiners: Vec<Joiner>,
    at: DateTime<Utc>,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Welcomer {
    tx: mpsc::Sender<Joins>,
}

/// The welcomer stopped (the service is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the welcomer is not running")]
pub struct WelcomerStopped;

impl Welcomer {
    /// Reports that `joiners` joined `chat` at `at`.
    pub async fn joined(
        &self,
        chat: ChatId,
        joiners: Vec<Joiner>,
        at: DateTime<Utc>,
    ) -> Result<(), WelcomerStopped> {
        self.tx
            .send(Joins { chat, joiners, at })
            .await
            .map_err(|_| WelcomerStopped)
    }
}

/// What the welcomer needs.
pub struct WelcomerTask {
    pub store: Store,
    pub directory: Arc<Directory>,
    pub scripts: Arc<LiveScripts>,
    pub outbox: Outbox,
    pub webhook_hosts: Vec<String>,
}

impl WelcomerTask {
    pub fn spawn(self) -> (Welcomer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        (Welcomer { tx }, tokio::spawn(self.run(rx)))
    }

    fn place_timing(&self, chat: &ChatId) -> welcome::WelcomeTiming {
        let settings = self.directory.get(chat);
        self.scripts.current().welcome.timing(Place {
            chat: Some(chat),
            settings: &settings,
        })
    }

    async fn run(self, mut rx: mpsc::Receiver<Joins>) {
        let mut groups: HashMap<ChatId, GroupWelcomes> = HashMap::new();
        loop {
            let next_due = groups
                .iter()
                .filter_map(|(chat, g)| g.due_at(&self.place_timing(chat)))
                .min();
            let sleep = match next_due {
                Some(due) => (due - Utc::now()).to_std().unwrap_or_default(),
                None => std::time::Duration::from_secs(3600),
            };
            tokio::select! {
                joins = rx.recv() => match joins {
                    Some(j) => {
                        groups.entry(j.chat).or_default().add(j.joiners, j.at);
                    }
                    None => break,
                },
                () = tokio::time::sleep(sleep) => {}
            }
            let now = Utc::now();
            let mut due = Vec::new();
            for (chat, group) in groups.iter_mut() {
                if let Some(joiners) = group.take_due(now, &self.place_timing(chat)) {
                    due.push((chat.clone(), joiners));
                }
            }
            for (chat, joiners) in due {
                self.deliver(&chat, joiners, now).await;
            }
            groups.retain(|chat, g| !g.is_idle(now, &self.place_timing(chat)));
        }
        let waiting: usize = groups.values().map(GroupWelcomes::pending).sum();
        if waiting > 0 {
            warn!(
                members = waiting,
                "shutting down: joins still waiting for their batch are not welcomed"
            );
        }
    }

    /// Welcomes a due batch in `chat`.
    async fn deliver(&self, chat: &ChatId, joiners: Vec<Joiner>, now: DateTime<Utc>) {
        let count = joiners.len();
        let Some((group, welcomed)) = self.facts(chat, &joiners).await else {
            return;
        };
        let (bot, to, caps) = match group {
            // WeCom sends a customer group's welcome itself, from the template its owner
            // attached: the join is counted, nothing is posted.
            Some(g) if g.customer => {
                info!(chat = %chat, members = count, "customer group: welcomed by WeCom's own template");
                return;
            }
            Some(g) if g.status == GroupStatus::Adopted => (
                g.bot.clone(),
                crate::outbox::group_destination(&g, &self.webhook_hosts),
                crate::outbox::posting_capabilities(&g),
            ),
            _ => {
                warn!(chat = %chat, members = count, "welcome not sent: the bot has not adopted this group");
                return;
            }
        };
        let scripts = self.scripts.current();
        let settings = self.directory.get(chat);
        let place = Place {
            chat: Some(chat),
            settings: &settings,
        };
        let last_welcomed = |user: &str| {
            welcomed
                .get(user)
                .and_then(|secs| DateTime::from_timestamp(*secs, 0))
        };
        let outcome = welcome::compose(&scripts, place, joiners, last_welcomed, now);
        if let Some(problem) = &outcome.problem {
            error!(chat = %chat, error = %problem, "welcome template failed to render; not sent");
        }
        if !outcome.recently_welcomed.is_empty() {
            info!(chat = %chat, members = ?outcome.recently_welcomed,
                "rejoined within the quiet period: not welcomed again");
        }
        let Some(action) = outcome.action else {
            if outcome.problem.is_none() && !outcome.welcomed.is_empty() {
                info!(chat = %chat, "welcomes are switched off here");
            }
            return;
        };
        let (actions, notes) = degrade(vec![action], caps, &settings);
        for note in notes {
            warn!(chat = %chat, "{note}");
        }
        let to = match to {
            Ok(to) => to,
            Err(why) => {
                warn!(chat = %chat, members = count, "welcome not sent: {why}");
                return;
            }
        };
        // The welcome and the record of who was welcomed are written together: a crash cannot
        // leave a member marked welcomed without the welcome on its way, or the reverse.
        let sends: Vec<NewSend> = actions
            .into_iter()
            .filter_map(|action| match action {
                Action::Post { message, purpose } => Some((message, purpose)),
                _ => None,
            })
            .enumerate()
            .map(|(i, (message, purpose))| NewSend {
                key: format!(
                    "welcome:{chat}:{}:{}:{i}",
                    now.timestamp_millis(),
                    outcome.welcomed.join(",")
                ),
                chat: Some(chat.clone()),
                bot: Some(bot.clone()),
                to: to.clone(),
                message,
                purpose: purpose.to_owned(),
                run: None,
                not_before: None,
                skip: None,
            })
            .collect();
        self.record(chat, sends, outcome.welcomed, now).await;
    }

    /// The group's record and when each of `joiners` was last welcomed there; `None` (logged)
    /// when the store cannot say.
    async fn facts(
        &self,
        chat: &ChatId,
        joiners: &[Joiner],
    ) -> Option<(Option<crate::store::GroupRecord>, HashMap<String, i64>)> {
        let store = self.store.clone();
        let key = chat.clone();
        let ids: Vec<String> = joiners.iter().map(|j| j.member.user_id.clone()).collect();
        let count = ids.len();
        let facts = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let group = store.group(&key)?;
            let mut welcomed = HashMap::new();
            for id in ids {
                if let Some(at) = store.welcomed_at(&key, &id)? {
                    welcomed.insert(id, at);
                }
            }
            Ok((group, welcomed))
        })
        .await;
        match facts {
            Ok(Ok(facts)) => Some(facts),
            Ok(Err(e)) => {
                error!(chat = %chat, members = count, error = %e, "welcome not sent: the store is unreadable");
                None
            }
            Err(e) => {
                error!(chat = %chat, members = count, error = %e, "welcome task failed");
                None
            }
        }
    }

    /// Queues the welcome's `sends` and records who was `welcomed`, in one transaction: a crash
    /// cannot leave a member marked welcomed without the welcome on its way, or the reverse.
    async fn record(
        &self,
        chat: &ChatId,
        sends: Vec<NewSend>,
        welcomed: Vec<String>,
        now: DateTime<Utc>,
    ) {
        let store = self.store.clone();
        let key = chat.clone();
        let (members, who) = (welcomed.len(), welcomed.join(","));
        let recorded = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let mut entries = Vec::new();
                for send in sends {
                    entries.extend(tx.enqueue(send, now)?);
                }
                for id in &welcomed {
                    tx.put_welcomed(&key, id, now.timestamp())?;
                }
                Ok(entries)
            })
        })
        .await;
        match recorded {
            Ok(Ok(entries)) => {
                info!(chat = %chat, members, "welcome queued");
                for entry in entries {
                    self.outbox.dispatch(entry);
                }
            }
            Ok(Err(e)) => error!(chat = %chat, members = %who, error = %e,
                "welcome not sent: the store refused it"),
            Err(e) => error!(chat = %chat, error = %e, "welcome task failed"),
        }
    }
}
