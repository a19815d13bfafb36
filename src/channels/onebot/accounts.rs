//! The OneBot hub as the runtime's [`BotAccounts`]: each ability is the OneBot action that
//! carries it (offered only where the implementation's `get_supported_actions` lists it), and
//! the member list is read leniently from `get_group_member_list`.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use crate::domain::{AccountKey, ChatId};
use crate::runtime::accounts::{Ability, AccountError, BotAccounts, FileData, MemberList};
use crate::wire::onebot::hub::{CallError, DELETE_ACTION, Hub};

/// The removal extension, used only when the implementation lists it.
pub const REMOVE_ACTION: &str = "wx.delete_groupmember";
/// Reading a file a message carries.
pub const FILE_ACTION: &str = "get_file";

/// The OneBot action behind `ability`.
pub fn action_of(ability: Ability) -> &'static str {
    match ability {
        Ability::RemoveMember => REMOVE_ACTION,
        Ability::DeleteMessage => DELETE_ACTION,
        Ability::ReadFile => FILE_ACTION,
    }
}

fn account_error(e: CallError) -> AccountError {
    AccountError(e.to_string())
}

/// Members as `get_group_member_list` reports them: id and the name to show (the group nickname
/// when there is one); entries without a `user_id` are skipped. `None`: the answer is no list.
pub fn listed_members(answer: &Value) -> Option<MemberList> {
    let members = answer.as_array()?;
    Some(
        members
            .iter()
            .filter_map(|m| {
                let id = m.get("user_id")?.as_str()?;
                let name = ["user_displayname", "user_name"]
                    .iter()
                    .filter_map(|k| m.get(*k).and_then(Value::as_str))
                    .find(|n| !n.is_empty())
                    .unwrap_or("");
                Some((id.to_owned(), name.to_owned()))
            })
            .collect(),
    )
}

impl BotAccounts for Hub {
    fn is_connected(&self, key: &AccountKey) -> bool {
        Hub::is_connected(self, key)
    }

    fn offers(&self, key: &AccountKey, ability: Ability) -> bool {
        self.supports(key, action_of(ability))
    }

    fn members<'a>(
        &'a self,
        key: &'a AccountKey,
        chat: &'a ChatId,
    ) -> BoxFuture<'a, Result<Option<MemberList>, AccountError>> {
        Box::pin(async move {
            let params = json!({"group_id": chat.as_str()});
            self.call(key, "get_group_member_list", params)
                .await
                .map(|answer| listed_members(&answer))
                .map_err(account_error)
        })
    }

    fn remove_member<'a>(
        &'a self,
        key: &'a AccountKey,
        chat: &'a ChatId,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(async move {
            let params = json!({"group_id": chat.as_str(), "user_list": [user]});
            self.call(key, REMOVE_ACTION, params)
                .await
                .map(|_| ())
                .map_err(account_error)
        })
    }

    fn delete_message<'a>(
        &'a self,
        key: &'a AccountKey,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(async move {
            Hub::delete_message(self, key, message_id)
                .await
                .map_err(account_error)
        })
    }

    fn file<'a>(
        &'a self,
        key: &'a AccountKey,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<FileData, AccountError>> {
        Box::pin(async move {
            let file = self
                .call(
                    key,
                    FILE_ACTION,
                    json!({"file_id": file_id, "type": "data"}),
                )
                .await
                .map_err(account_error)?;
            if let Some(data) = file["data"].as_str() {
                return Ok(FileData::Base64(data.to_owned()));
            }
            match file["url"].as_str() {
                Some(url) => Ok(FileData::Url(url.to_owned())),
                None => Err(AccountError("get_file gave neither data nor url".into())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_read_leniently() {
        let answer = json!([
            {"user_id": "u1", "user_name": "张三", "user_displayname": "张三-会计"},
            {"user_id": "u2", "user_name": "李四", "user_displayname": ""},
            {"user_name": "no id"},
            "junk"
        ]);
        assert_eq!(
            listed_members(&answer),
            Some(vec![
                ("u1".to_owned(), "张三-会计".to_owned()),
                ("u2".to_owned(), "李四".to_owned()),
            ])
        );
        assert_eq!(listed_members(&json!({"not": "a list"})), None);
    }
}
