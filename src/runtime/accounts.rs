//! What the runtime asks of a bot account — read a group's member list, remove a member, delete
//! a message, fetch a file — whichever channel carries the account. A channel implements
//! [`BotAccounts`] (the OneBot hub does); the runtime never names a channel. Removing a member
//! and confirming it against the member list is decided here, once, for the chat command, the
//! moderation and the admin API alike.

use futures_util::future::BoxFuture;
use tracing::{info, warn};

use crate::domain::{AccountKey, ChatId};
use crate::store::Store;

/// Something an account's implementation may or may not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ability {
    RemoveMember,
    DeleteMessage,
    /// Reading a file a message carries (an image, to look for QR codes in it).
    ReadFile,
}

/// Why an account did not do what it was asked, as the channel says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AccountError(pub String);

/// A file an account handed over: its bytes in base64, or where to download it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileData {
    Base64(String),
    Url(String),
}

/// A group's members as `(user id, name)`.
pub type MemberList = Vec<(String, String)>;

/// The bot accounts the service is logged in as, through whatever channel carries them.
pub trait BotAccounts: Send + Sync {
    /// Whether `key` is connected now.
    fn is_connected(&self, key: &AccountKey) -> bool;

    /// Whether `key`'s implementation offers `ability` (false while it is not connected).
    fn offers(&self, key: &AccountKey, ability: Ability) -> bool;

    /// `chat`'s members as `(user id, name)`, or `None` when the answer held no list.
    fn members<'a>(
        &'a self,
        key: &'a AccountKey,
        chat: &'a ChatId,
    ) -> BoxFuture<'a, Result<Option<MemberList>, AccountError>>;

    /// Asks the implementation to remove `user` from `chat` (its answer confirms nothing).
    fn remove_member<'a>(
        &'a self,
        key: &'a AccountKey,
        chat: &'a ChatId,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountError>>;

    /// Deletes (recalls) a message: `message_id` as the implementation gave it.
    fn delete_message<'a>(
        &'a self,
        key: &'a AccountKey,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountError>>;

    /// The file `file_id` of a message.
    fn file<'a>(
        &'a self,
        key: &'a AccountKey,
        file_id: &'a str,
    ) -> BoxFuture<'a, Result<FileData, AccountError>>;
}

/// What became of a removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Listed before the removal and gone from the list read after it.
    Confirmed,
    /// The implementation said it removed them, but the list still has them.
    StillThere,
    /// The member list could not be read before or after, so nobody can say.
    Unconfirmed,
    /// Not in the group's member list: nothing to remove (nothing was asked).
    NotAMember,
    /// The bot account itself: it does not remove itself (releasing the group is how it leaves).
    OwnAccount,
    /// The implementation does not offer removal.
    Unsupported,
    Failed(AccountError),
}

impl Removal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Removal::Confirmed => "confirmed",
            Removal::StillThere => "still_there",
            Removal::Unconfirmed => "unconfirmed",
            Removal::NotAMember => "not_a_member",
            Removal::OwnAccount => "own_account",
            Removal::Unsupported => "unsupported",
            Removal::Failed(_) => "failed",
        }
    }
}

/// Reads `chat`'s member list through `key`; `None` (logged) when it cannot be read.
async fn read_members(
    accounts: &dyn BotAccounts,
    key: &AccountKey,
    chat: &ChatId,
) -> Option<MemberList> {
    match accounts.members(key, chat).await {
        Ok(Some(members)) => Some(members),
        Ok(None) => {
            warn!(chat = %chat, "the member list answer held no list");
            None
        }
        Err(e) => {
            warn!(chat = %chat, error = %e, "member list not read");
            None
        }
    }
}

/// Removes `user` from `chat` through `key`, confirmed by the member list read before (they must
/// be in it) and after (they must be gone from it); the list read after is stored.
pub async fn remove_member(
    store: &Store,
    accounts: &dyn BotAccounts,
    key: &AccountKey,
    chat: &ChatId,
    user: &str,
) -> Removal {
    if user == key.user_id {
        return Removal::OwnAccount;
    }
    if !accounts.offers(key, Ability::RemoveMember) {
        return Removal::Unsupported;
    }
    let listed_before = match read_members(accounts, key, chat).await {
        Some(members) if !members.iter().any(|(id, _)| id == user) => {
            info!(chat = %chat, user, "not removed: not in the member list");
            return Removal::NotAMember;
        }
        Some(_) => true,
        None => false,
    };
    if let Err(e) = accounts.remove_member(key, chat, user).await {
        return Removal::Failed(e);
    }
    let Some(members) = read_members(accounts, key, chat).await else {
        return Removal::Unconfirmed;
    };
    if members.iter().any(|(id, _)| id == user) {
        warn!(chat = %chat, user, "the implementation said ok, but the member is still listed");
        return Removal::StillThere;
    }
    let store = store.clone();
    let (group, member) = (chat.clone(), user.to_owned());
    let stored = tokio::task::spawn_blocking(move || {
        store.write(|tx| tx.roster_replace(&group, &members).map(|_| ()))
    })
    .await;
    if !matches!(stored, Ok(Ok(()))) {
        warn!(chat = %chat, user = %member, "the removal is confirmed but the member list was not stored");
    }
    if !listed_before {
        warn!(chat = %chat, user, "not listed after the removal, but the list before it was unreadable");
        return Removal::Unconfirmed;
    }
    info!(chat = %chat, user, "member removed (confirmed by the member list)");
    Removal::Confirmed
}
