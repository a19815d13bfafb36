//! Operator accounts as the CLI (and the console) manage them: names checked, passwords hashed
//! with argon2id (memory-hard; the crate's defaults, 19 MiB and two passes, as OWASP advises)
//! and checked in constant time, the last admin kept. The store holds only the hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};

use crate::domain::OperatorRole;
use crate::store::{OperatorRecord, Store, StoreError};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest, in bytes (hashing a megabyte is work an attacker should not get for free).
const MAX_PASSWORD_BYTES: usize = 256;
/// The longest name, in characters.
const MAX_NAME_CHARS: usize = 32;

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "the name {0:?} is not allowed: 1 to 32 letters, digits, '.', '_' or '-' (Chinese names are fine), no spaces"
    )]
    BadName(String),
    #[error("the password is too short: at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("the password is too long: at most {MAX_PASSWORD_BYTES} bytes")]
    LongPassword,
    #[error("an operator called {0:?} exists already")]
    Exists(String),
    #[error("no operator is called {0:?}")]
    NoSuch(String),
    #[error("{0:?} is the last admin: add another admin first")]
    LastAdmin(String),
    #[error("could not read the password from stdin: {0}")]
    Stdin(String),
    #[error("the password could not be hashed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks an account name.
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let count = name.chars().count();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-');
    if count == 0 || count > MAX_NAME_CHARS || !name.chars().all(allowed) {
        return Err(AccountError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::ShortPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::LongPassword);
    }
    Ok(())
}

/// `password`'s argon2id hash as a PHC string, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AccountError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the stored `hash` (false for a hash that does not parse).
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Adds an account.
pub fn add(
    store: &Store,
    name: &str,
    role: OperatorRole,
    password: &str,
    now: DateTime<Utc>,
) -> Result<OperatorRecord, AccountError> {
    check_name(name)?;
    check_password(password)?;
    let record = OperatorRecord {
        name: name.to_owned(),
        role,
        password_hash: hash_password(password)?,
        created_at: now,
        updated_at: None,
    };
    match store.add_operator(&record)? {
        true => Ok(record),
        false => Err(AccountError::Exists(name.to_owned())),
    }
}

/// Gives `name` a new password.
pub fn reset_password(
    store: &Store,
    name: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    check_password(password)?;
    let mut record = store
        .operator(name)?
        .ok_or_else(|| AccountError::NoSuch(name.to_owned()))?;
    record.password_hash = hash_password(password)?;
    record.updated_at = Some(now);
    match store.update_operator(&record)? {
        true => Ok(()),
        false => Err(AccountError::NoSuch(name.to_owned())),
    }
}

/// Removes `name`'s account, unless it is the last admin (nobody could manage accounts then).
/// Removes the account `name`; answers the role it had.
pub fn remove(store: &Store, name: &str) -> Result<OperatorRole, AccountError> {
    let accounts = store.operators()?;
    let Some(account) = accounts.iter().find(|a| a.name == name) else {
        return Err(AccountError::NoSuch(name.to_owned()));
    };
    let admins = accounts
        .iter()
        .filter(|a| a.role == OperatorRole::Admin)
        .count();
    if account.role == OperatorRole::Admin && admins == 1 {
        return Err(AccountError::LastAdmin(name.to_owned()));
    }
    match store.remove_operator(name)? {
        true => Ok(account.role),
        false => Err(AccountError::NoSuch(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn passwords_are_hashed_with_argon2id_and_checked() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        // A fresh salt each time.
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn names_and_passwords_are_checked() {
        for good in ["wang", "王小明", "ops.team-1", "a_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "semi;colon", &"x".repeat(33)] {
            assert!(
                matches!(check_name(bad), Err(AccountError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            check_password("short"),
            Err(AccountError::ShortPassword)
        ));
        assert!(matches!(
            check_password(&"p".repeat(300)),
            Err(AccountError::LongPassword)
        ));
        assert!(check_password("十个汉字的密码真的够长").is_ok());
    }

    #[test]
    fn accounts_are_added_reset_and_removed_and_the_last_admin_stays() {
        let (_dir, store) = store();
        let now = Utc::now();
        add(&store, "boss", OperatorRole::Admin, "first password", now).unwrap();
        assert!(matches!(
            add(
                &store,
                "boss",
                OperatorRole::Viewer,
                "another password",
                now
            ),
            Err(AccountError::Exists(_))
        ));
        add(&store, "li", OperatorRole::Viewer, "viewer password", now).unwrap();
        let boss = store.operator("boss").unwrap().unwrap();
        assert!(verify_password("first password", &boss.password_hash));

        reset_password(&store, "boss", "second password", now).unwrap();
        let boss = store.operator("boss").unwrap().unwrap();
        assert!(verify_password("second password", &boss.password_hash));
        assert!(!verify_password("first password", &boss.password_hash));
        assert!(boss.updated_at.is_some());
        assert!(matches!(
            reset_password(&store, "nobody", "some password", now),
            Err(AccountError::NoSuch(_))
        ));

        assert!(matches!(
            remove(&store, "boss"),
            Err(AccountError::LastAdmin(_))
        ));
        remove(&store, "li").unwrap();
        assert!(matches!(remove(&store, "li"), Err(AccountError::NoSuch(_))));
        let names: Vec<String> = store
            .operators()
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["boss"]);
    }
}
