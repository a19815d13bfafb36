//! The operators' alert target: a WeCom group robot webhook in their own staff group
//! (`[alerts] webhook_url`), where what members must not see goes — a member's report of another
//! (which would otherwise name the reporter in front of the group) and a red-envelope test's
//! verdict on a group. The group robot cannot reach admins privately, so this is the private way
//! there; a bot account can also message the group's owner and admins themselves
//! ([`private_message`]). Without an alert target such reports stay in the moderation log and
//! the API.

use chrono::{DateTime, Utc};

use crate::domain::{AccountKey, ChatId, OutMessage, Secret};
use crate::store::{Destination, NewSend};

/// Where alerts go, if anywhere.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    webhook_url: Option<Secret>,
}

impl Alerts {
    /// `webhook_url` was checked against the allowed webhook hosts when the config was read.
    pub fn new(webhook_url: Option<Secret>) -> Self {
        Self { webhook_url }
    }

    /// Whether there is an alert target.
    pub fn configured(&self) -> bool {
        self.webhook_url.is_some()
    }

    /// `text` about `chat`, as a send to the alert target (`None` without one). `key` makes it
    /// idempotent: the same key is sent once.
    pub fn send(
        &self,
        key: String,
        chat: &ChatId,
        purpose: &str,
        text: String,
        not_before: DateTime<Utc>,
    ) -> Option<NewSend> {
        let url = self.webhook_url.as_ref()?;
        let to = Destination::Webhook {
            url: url.expose().to_owned(),
        };
        // Not the group's send (no chat, no bot): releasing the group must not skip it, and the
        // group's limits are not the staff group's.
        let text = format!("{text}\n（群：{chat}）");
        Some(text_send(key, to, text, purpose, not_before))
    }
}

/// `text` to `to`, sent once per `key`, not before `not_before`; of no group and no bot.
fn text_send(
    key: String,
    to: Destination,
    text: String,
    purpose: &str,
    not_before: DateTime<Utc>,
) -> NewSend {
    NewSend {
        key,
        chat: None,
        bot: None,
        to,
        message: OutMessage::Text {
            content: text,
            mentioned: Vec::new(),
            mentioned_mobiles: Vec::new(),
        },
        purpose: purpose.to_owned(),
        run: None,
        not_before: Some(not_before),
        skip: None,
    }
}

/// `text` about `chat` as a private message to `user_id` through the bot account `via` (a
/// member's report to the group's owner or an admin). It is listed among the group's sends; the
/// implementation refusing it (not a contact of the account) leaves it failed there, with why.
pub fn private_message(
    via: &AccountKey,
    chat: &ChatId,
    user_id: &str,
    key: String,
    purpose: &str,
    text: String,
    not_before: DateTime<Utc>,
) -> NewSend {
    let to = Destination::Private {
        account: via.user_id.clone(),
        user_id: user_id.to_owned(),
    };
    NewSend {
        chat: Some(chat.clone()),
        bot: Some(via.bot.clone()),
        ..text_send(key, to, text, purpose, not_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_target_nothing_is_sent_and_with_one_the_group_is_named() {
        let chat = ChatId::new("wrk123");
        let now = Utc::now();
        let none = Alerts::new(None);
        assert!(!none.configured());
        assert!(
            none.send("k".into(), &chat, "report", "x".into(), now)
                .is_none()
        );
        let url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=staff";
        let alerts = Alerts::new(Some(Secret::new(url)));
        let send = alerts
            .send("k".into(), &chat, "report", "📣 举报".into(), now)
            .unwrap();
        assert_eq!(send.chat, None, "not the group's send");
        assert_eq!(send.to, Destination::Webhook { url: url.into() });
        let OutMessage::Text { content, .. } = send.message else {
            panic!("an alert is text")
        };
        assert_eq!(content, "📣 举报\n（群：wrk123）");
    }
}
