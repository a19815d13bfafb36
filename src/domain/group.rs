//! A group as the operator configures it: its [`GroupSettings`] (owner, roles, tags, switched-off
//! rules, name) and the [`SettingsChange`]s commands and the admin API make to them.

use super::*;

/// A member's standing in a group (the community pyramid), lowest first so that roles compare:
/// `Role::Admin >= Role::Helper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    /// 小当家: helps run the group.
    Helper,
    /// 大当家: runs the group with the owner.
    Admin,
    /// Whoever adopted the group (or an operator, in every group).
    Owner,
}

impl Role {
    /// The name members know the role by.
    pub fn title(self) -> &'static str {
        match self {
            Role::Member => "成员",
            Role::Helper => "小当家",
            Role::Admin => "大当家",
            Role::Owner => "群主",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "helper" => Some(Role::Helper),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Helper => "helper",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// A member who holds a role in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleHolder {
    pub role: Role,
    /// The display name when the role was given (for lists members read).
    #[serde(default)]
    pub name: String,
}

/// What operators and group admins have set for one group: who holds which role, the group's
/// tags (for scoped rules) and the rules switched off here. Keyed by chat id, never by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSettings {
    /// The owner (the adopter), by user id.
    #[serde(default)]
    pub owner: Option<String>,
    /// The owner's display name when they became owner.
    #[serde(default)]
    pub owner_name: String,
    /// Admins and helpers by user id (the owner is not listed here).
    #[serde(default)]
    pub roles: std::collections::BTreeMap<String, RoleHolder>,
    /// Tags such as `province:广东` or `type:新手群`.
    #[serde(default)]
    pub tags: std::collections::BTreeSet<String>,
    /// Rule ids switched off in this group.
    #[serde(default)]
    pub disabled_rules: std::collections::BTreeSet<String>,
    /// The group's name as the operator gave it (templates: `group.name`). Empty: unknown.
    #[serde(default)]
    pub name: String,
    /// An IANA time zone in which this group's scheduled jobs run, instead of the job's own.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl GroupSettings {
    /// The role `user_id` holds here (operators are owners everywhere: see the engine).
    pub fn role_of(&self, user_id: &str) -> Role {
        if self.owner.as_deref() == Some(user_id) {
            return Role::Owner;
        }
        self.roles.get(user_id).map_or(Role::Member, |h| h.role)
    }

    /// Who hears of a member's report privately: the owner and the admins (大当家), except the
    /// people in `except` (the reporter, the reported).
    pub fn report_recipients(&self, except: &[&str]) -> Vec<String> {
        let admins = self
            .roles
            .iter()
            .filter(|(_, holder)| holder.role == Role::Admin)
            .map(|(user, _)| user.as_str());
        self.owner
            .as_deref()
            .into_iter()
            .chain(admins)
            .filter(|user| !except.contains(user))
            .map(str::to_owned)
            .collect()
    }

    /// Applies one change; returns whether anything changed.
    pub fn apply(&mut self, change: &SettingsChange) -> bool {
        match change {
            SettingsChange::SetOwner { user_id, name } => {
                let changed =
                    self.owner.as_deref() != Some(user_id.as_str()) || self.owner_name != *name;
                self.owner = Some(user_id.clone());
                self.owner_name = name.clone();
                self.roles.remove(user_id).is_some() || changed
            }
            SettingsChange::SetRole {
                user_id,
                name,
                role,
            } => match role {
                Role::Member => self.roles.remove(user_id).is_some(),
                Role::Owner => self.apply(&SettingsChange::SetOwner {
                    user_id: user_id.clone(),
                    name: name.clone(),
                }),
                role => {
                    let holder = RoleHolder {
                        role: *role,
                        name: name.clone(),
                    };
                    self.roles.insert(user_id.clone(), holder.clone()) != Some(holder)
                }
            },
            // Every tag is applied: no short-circuiting `any`.
            SettingsChange::AddTags(tags) => {
                tags.iter()
                    .map(|t| self.tags.insert(t.clone()))
                    .filter(|&inserted| inserted)
                    .count()
                    > 0
            }
            SettingsChange::RemoveTags(tags) => {
                tags.iter()
                    .map(|t| self.tags.remove(t))
                    .filter(|&removed| removed)
                    .count()
                    > 0
            }
            SettingsChange::ReplaceTags(tags) => {
                let new: std::collections::BTreeSet<String> = tags.iter().cloned().collect();
                let changed = new != self.tags;
                self.tags = new;
                changed
            }
            SettingsChange::SwitchRule { rule, enabled } => {
                if *enabled {
                    self.disabled_rules.remove(rule)
                } else {
                    self.disabled_rules.insert(rule.clone())
                }
            }
            SettingsChange::SetName(name) => {
                let changed = self.name != *name;
                self.name = name.clone();
                changed
            }
            SettingsChange::SetTimezone(zone) => {
                let changed = self.timezone != *zone;
                self.timezone = zone.clone();
                changed
            }
        }
    }
}

/// A change to a group's [`GroupSettings`], from an in-chat command or the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SettingsChange {
    SetOwner {
        user_id: String,
        #[serde(default)]
        name: String,
    },
    /// `Role::Member` takes a role away.
    SetRole {
        user_id: String,
        name: String,
        role: Role,
    },
    AddTags(Vec<String>),
    RemoveTags(Vec<String>),
    ReplaceTags(Vec<String>),
    SwitchRule {
        rule: String,
        enabled: bool,
    },
    SetName(String),
    /// `None` goes back to each job's own time zone.
    SetTimezone(Option<String>),
}
