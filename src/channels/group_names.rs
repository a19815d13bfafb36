//! Learning the names of the group robot's groups. WeCom tells the robot no group's name, but
//! each callback carries a one-time link (`GetChatInfoUrl`, valid 5 minutes) whose answer is
//! `{"errcode": 0, "chatid", "name", "chattype", "members": [...]}`. A group without a name
//! (none from the operator either) gets WeCom's, read once in the background, off the callback's
//! path; an operator's name is never replaced, and the id stays the fallback where none is known.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::domain::{ChatId, SettingsChange};
use crate::runtime::Services;

/// A group whose name could not be learnt is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(600);
/// Reads of names in flight at once (each one group's first callbacks).
const IN_FLIGHT: usize = 4;
/// Groups remembered as tried before the old entries are let go.
const MAX_TRIED: usize = 10_000;
/// A name longer than an operator may give one (the admin API's limit) is cut.
const MAX_NAME_CHARS: usize = 64;

/// The answer of a `GetChatInfoUrl`.
#[derive(Debug, Deserialize)]
struct ChatInfo {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    name: String,
}

/// Reads group names from the robot's chat-info links; cheap to share behind an `Arc`.
pub struct GroupNames {
    http: reqwest::Client,
    /// `wecom.webhook_hosts`: the links must point there.
    hosts: Vec<String>,
    /// When each group was last tried.
    tried: Mutex<HashMap<ChatId, Instant>>,
    in_flight: Arc<Semaphore>,
}

impl GroupNames {
    pub fn new(hosts: Vec<String>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            hosts,
            tried: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        })
    }

    /// Learns `chat`'s name from `url` in the background when the group has none and was not
    /// tried lately; otherwise does nothing (one map lookup).
    pub fn learn(self: &Arc<Self>, services: &Arc<Services>, chat: &ChatId, url: String) {
        if !services.directory.get(chat).name.is_empty() {
            return;
        }
        let now = Instant::now();
        {
            let mut tried = self.tried.lock().unwrap_or_else(|e| e.into_inner());
            if tried
                .get(chat)
                .is_some_and(|at| now.duration_since(*at) < RETRY_AFTER)
            {
                return;
            }
            if tried.len() >= MAX_TRIED {
                tried.retain(|_, at| now.duration_since(*at) < RETRY_AFTER);
                if tried.len() >= MAX_TRIED {
                    // More unnamed groups tried lately than are remembered: this one waits for
                    // a later callback rather than the map growing.
                    return;
                }
            }
            tried.insert(chat.clone(), now);
        }
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            // Busy: this group is tried again after RETRY_AFTER, with a fresh link.
            return;
        };
        let (names, services, chat) = (Arc::clone(self), Arc::clone(services), chat.clone());
        services.tasks.clone().spawn(async move {
            let _permit = permit;
            match names.read(&url).await {
                Ok(name) => {
                    // An operator may have named it meanwhile: theirs stays.
                    if !services.directory.get(&chat).name.is_empty() {
                        return;
                    }
                    match services
                        .directory
                        .change(&chat, vec![SettingsChange::SetName(name.clone())])
                        .await
                    {
                        Ok(_) => info!(chat = %chat, name = %name, "group name learnt from WeCom"),
                        Err(e) => warn!(chat = %chat, error = %e, "group name not saved"),
                    }
                }
                Err(reason) => debug!(chat = %chat, reason, "group name not learnt"),
            }
        });
    }

    /// The group's name from a chat-info link.
    async fn read(&self, url: &str) -> Result<String, String> {
        let parsed = url::Url::parse(url).map_err(|_| "not a URL".to_owned())?;
        crate::outbound::check_listed(&self.hosts, &parsed, "wecom.webhook_hosts")
            .map_err(|e| format!("link refused: {e}"))?;
        let response = self
            .http
            .get(parsed)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let info: ChatInfo = response
            .json()
            .await
            .map_err(|e| format!("answer unreadable: {}", e.without_url()))?;
        if info.errcode != 0 {
            return Err(format!("errcode {} ({})", info.errcode, info.errmsg));
        }
        let name: String = info
            .name
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME_CHARS)
            .collect();
        if name.is_empty() {
            return Err("the answer has no name".into());
        }
        Ok(name)
    }
}
