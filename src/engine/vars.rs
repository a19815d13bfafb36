//! The variables operators' templates see: `member`, `group` and `date` (local time, UTC+8),
//! plus what a particular message adds (`targets`, `tags`, `stats`, `members` …). Documented for
//! operators in `bot-scripts/README.md`; `trumpet check` renders every template with
//! [`sample`] so that a misspelt variable is caught before members see it.

use chrono::{DateTime, Datelike, Timelike, Utc};
use minijinja::{Value, context};
use serde::Serialize;

use crate::domain::{ChatId, GroupSettings, Role, Sender};

/// Operators' local time: China Standard Time (UTC+8, no DST).
pub const LOCAL_OFFSET_SECS: i64 = 8 * 3600;

const WEEKDAYS: [&str; 7] = [
    "星期一",
    "星期二",
    "星期三",
    "星期四",
    "星期五",
    "星期六",
    "星期日",
];

/// A group's activity, for the statistics command and templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupStats {
    pub members_seen: u64,
    pub messages: u64,
    pub today_messages: u64,
    pub today_speakers: u64,
    /// The group's members now, from its member list (bot accounts list them; 0: unknown).
    pub members: u64,
    /// The bot hears every message (a bot account), not only those that @-mention it.
    pub sees_every_message: bool,
}

/// `date`: the local date and time.
pub fn date(now: DateTime<Utc>) -> Value {
    let local = now + chrono::Duration::seconds(LOCAL_OFFSET_SECS);
    date_of(local.naive_utc())
}

/// `date` in `zone` (scheduled jobs run in the job's or the group's time zone).
pub fn date_in(now: DateTime<Utc>, zone: chrono_tz::Tz) -> Value {
    date_of(now.with_timezone(&zone).naive_local())
}

fn date_of(local: chrono::NaiveDateTime) -> Value {
    let weekday = local.weekday().num_days_from_monday() as usize;
    let (lunar, solar_term) = lunar_of(local.date());
    context! {
        today => local.format("%Y-%m-%d").to_string(),
        year => local.year(),
        month => local.month(),
        day => local.day(),
        weekday => WEEKDAYS[weekday],
        weekday_number => weekday + 1,
        time => format!("{:02}:{:02}", local.hour(), local.minute()),
        lunar => lunar,
        solar_term => solar_term,
    }
}

/// The Chinese lunisolar month and day of `date` ("十月十四", "闰六月初一"; empty outside
/// 1900–2100) and the solar term that falls on it ("小雪"; empty on other days).
fn lunar_of(date: chrono::NaiveDate) -> (String, &'static str) {
    use nongli::language::{Language, StaticTranslate, Translate};
    let lunar = nongli::ChineseDate::from_gregorian(&date)
        .map(|c| {
            format!(
                "{}{}",
                c.chinese_month()
                    .translate_to_string(Language::ChineseSimplified),
                c.chinese_day()
                    .translate_to_string(Language::ChineseSimplified)
            )
        })
        .unwrap_or_default();
    let term = nongli::SolarTerm::from_date(&date)
        .map(|t| t.static_translate(Language::ChineseSimplified))
        .unwrap_or_default();
    (lunar, term)
}

/// `member`: who the bot is answering.
pub fn member(sender: &Sender, role: Role) -> Value {
    context! {
        id => &sender.user_id,
        name => display_name(sender),
        alias => &sender.alias,
        role => role.title(),
    }
}

/// A name to show for a member: the name, else the user id.
/// A person as a notice names them: `张三（zhangsan）`, or only the id when no name is known (or
/// the name is the id).
pub fn name_and_id(name: &str, id: &str) -> String {
    let name = name.trim();
    if name.is_empty() || name == id {
        id.to_owned()
    } else {
        format!("{name}（{id}）")
    }
}

pub fn display_name(sender: &Sender) -> &str {
    if sender.name.is_empty() {
        &sender.user_id
    } else {
        &sender.name
    }
}

fn holders(settings: &GroupSettings, role: Role) -> Vec<String> {
    settings
        .roles
        .iter()
        .filter(|(_, h)| h.role == role)
        .map(|(id, h)| {
            if h.name.is_empty() {
                id.clone()
            } else {
                h.name.clone()
            }
        })
        .collect()
}

/// `group`: the group's id, name, tags and role holders.
pub fn group(chat: Option<&ChatId>, settings: &GroupSettings) -> Value {
    context! {
        chat_id => chat.map(ChatId::as_str).unwrap_or(""),
        name => &settings.name,
        tags => settings.tags.iter().collect::<Vec<_>>(),
        owner => if settings.owner_name.is_empty() {
            settings.owner.as_deref().unwrap_or("")
        } else {
            settings.owner_name.as_str()
        },
        admins => holders(settings, Role::Admin),
        helpers => holders(settings, Role::Helper),
    }
}

/// The variables every template sees.
pub fn base(
    sender: &Sender,
    role: Role,
    chat: Option<&ChatId>,
    settings: &GroupSettings,
    now: DateTime<Utc>,
) -> Value {
    context! {
        member => member(sender, role),
        group => group(chat, settings),
        date => date(now),
    }
}

/// Sample variables for `trumpet check`: every variable any template may use, filled in.
pub fn sample(now: DateTime<Utc>) -> Value {
    let sender = Sender {
        user_id: "zhangsan".into(),
        name: "张三".into(),
        alias: "广州-张三-出纳".into(),
    };
    let mut settings = GroupSettings {
        owner: Some("lisi".into()),
        name: "广州财税交流1群".into(),
        ..GroupSettings::default()
    };
    settings.tags.insert("province:广东".into());
    settings.roles.insert(
        "wangwu".into(),
        crate::domain::RoleHolder {
            role: Role::Admin,
            name: "王五".into(),
        },
    );
    let chat = ChatId::new("wrSampleChatId");
    context! {
        // Scheduled jobs also see the member count.
        group => context! { member_count => 120, ..group(Some(&chat), &settings) },
        ..context! {
            ..base(&sender, Role::Member, Some(&chat), &settings, now),
            ..extras_sample(),
        }
    }
}

/// The message-specific variables, filled in for `trumpet check`.
fn extras_sample() -> Value {
    context! {
        command => "设置大当家",
        required_role => "群主",
        target_role => "大当家",
        targets => vec!["王五"],
        can_remove => true,
        privately => true,
        missing => vec!["赵六"],
        tags => vec!["province:广东", "type:新手群"],
        tag => "type:新手群",
        rule => "invoice",
        reason => "请勿发布广告",
        warnings => 1,
        limit => 3,
        action => "撤回并警告",
        evidence => "加微信",
        text => "加我薇信领取免费资料",
        deleted => true,
        stats => GroupStats { members_seen: 120, messages: 3456, today_messages: 42, today_speakers: 9, members: 130, sees_every_message: false },
        members => vec![context! { id => "zhaoliu", name => "赵六", mention => "<@zhaoliu>" }],
        mentions => "<@zhaoliu>",
        group_rules => "1. 禁止发广告",
        scene => "qrcode",
        job => context! { name => "morning-report", slot => "2026-11-23 07:30" },
        column => sample_column(2),
        calendar => [2, 4, 5].map(sample_column),
        envelope => context! {
            id => "rt-20261123093000-1a2b3c4d",
            phrase => "财税好运 527",
            total => "20.00",
            shares => 20,
            window_minutes => 120,
            ends_at => "11:30",
            mention_needed => true,
        },
        claim => context! { amount => "1.23", left => 12 },
        results => context! {
            claims => 15,
            claimed => "16.80",
            emptied => false,
            took => "3 分 20 秒",
            lucky => context! { name => "张三", amount => "3.21" },
            verdict => "sluggish",
            verdict_text => "不太活跃",
            first_claim => "12 分 5 秒",
            half_claimed => "48 分",
            all_claimed => "—",
            claimer_ratio => "12%",
            members => 120,
            silent_claimers => 4,
            posted => true,
            posted_late => "",
        },
        groups => vec![context! {
            chat_id => "wrSampleChatId",
            name => "广州财税交流1群",
            score => 18,
            stage => "dead",
            stage_text => "沉寂",
            action => "把还活跃的成员引导到活跃的群，然后解散本群",
            reasons => "最近 7 天没有人发言",
        }],
        counts => context! { total => 120, push_only => 2, dead => 3, declining => 12, new => 8, steady => 97 },
        items => vec![context! {
            id => "vat-small-scale-2027",
            date => "2026-11-24",
            title => "小规模纳税人增值税优惠政策延续",
            body => "月销售额 10 万元以下免征增值税。",
            link => "https://example.com/policy",
        }],
    }
}

/// A weekly column, filled in for `trumpet check`.
fn sample_column(weekday: u8) -> Value {
    context! {
        weekday => weekday,
        name => "干货分享",
        intro => "群里的老师会分享一篇实务干货",
        content => "今天的干货：月末结账的 8 个检查点",
    }
}

/// What a template sees of a feed: `feeds.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedView {
    pub name: String,
    pub title: String,
    /// Newest first, at most the feed's `items`, none older than its `max_age_hours`.
    pub items: Vec<FeedItemView>,
    /// Whether the last fetch worked (the items may be older when it did not).
    pub ok: bool,
}

impl FeedView {
    /// A feed with one entry, for checking templates.
    pub fn sample(name: &str) -> FeedView {
        FeedView {
            name: name.to_owned(),
            title: "财税快讯".into(),
            items: vec![FeedItemView {
                title: "小规模纳税人增值税减免政策延续".into(),
                link: "https://example.com/news/1".into(),
                summary: "政策延续至2027年底。".into(),
                date: "11-22".into(),
            }],
            ok: true,
        }
    }
}

/// One item of a feed, as a template sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedItemView {
    pub title: String,
    pub link: String,
    pub summary: String,
    /// `MM-DD` in the report's zone, empty when the feed gives no date.
    pub date: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_are_local() {
        // 2026-11-22 23:30 UTC is Monday 07:30 in Shanghai.
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 23, 30, 0).unwrap();
        let d = date(now);
        assert_eq!(d.get_attr("today").unwrap().to_string(), "2026-11-23");
        assert_eq!(d.get_attr("weekday").unwrap().to_string(), "星期一");
        assert_eq!(d.get_attr("time").unwrap().to_string(), "07:30");
    }

    #[test]
    fn lunar_dates_and_solar_terms_match_the_almanac() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // Spring Festivals, the Mid-Autumn Festival, and solar terms of 2025–2026.
        assert_eq!(lunar_of(day(2025, 1, 29)), ("正月初一".to_owned(), ""));
        assert_eq!(lunar_of(day(2026, 2, 17)), ("正月初一".to_owned(), ""));
        assert_eq!(lunar_of(day(2025, 10, 6)).0, "八月十五");
        assert_eq!(lunar_of(day(2025, 12, 21)).1, "冬至");
        assert_eq!(lunar_of(day(2026, 4, 5)).1, "清明");
        assert_eq!(lunar_of(day(2026, 11, 22)), ("十月十四".to_owned(), "小雪"));
        assert_eq!(lunar_of(day(2026, 11, 23)).1, "");
        // Outside the tables: empty, not an error.
        assert_eq!(lunar_of(day(1850, 1, 1)), (String::new(), ""));
    }
}
