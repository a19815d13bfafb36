//! The people who run the service through the console and the admin API, and what each role may
//! do: a `viewer` reads; an `operator` runs the groups (settings, tags, rule switches,
//! broadcasts, red-envelope tests, moderation); an `admin` also edits the bot-scripts and the
//! accounts.

use serde::{Deserialize, Serialize};

/// An operator account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperatorRole {
    Viewer,
    Operator,
    Admin,
}

impl OperatorRole {
    /// Every role, least first.
    pub const ALL: [OperatorRole; 3] = [
        OperatorRole::Viewer,
        OperatorRole::Operator,
        OperatorRole::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Viewer => "viewer",
            OperatorRole::Operator => "operator",
            OperatorRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<OperatorRole> {
        OperatorRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// May change groups, run broadcasts and tests, moderate.
    pub fn can_change(self) -> bool {
        self >= OperatorRole::Operator
    }

    /// May edit the bot-scripts and the accounts.
    pub fn can_administer(self) -> bool {
        self == OperatorRole::Admin
    }
}

impl std::fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
