//! `bot-scripts/content/`: what scheduled reports are made of, as data rather than template
//! logic — the weekly calendar of columns (`calendar.toml`: dry goods on Tuesday, a course on
//! Thursday, a discussion on Friday) and the content queue (`queue.toml`: items for a date, and
//! undated items each used once, in order). Both files are optional and validated completely.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Deserialize;

use super::{ScriptError, Source, check_identifier, line_col};
use crate::engine::content::{Column, Item};

/// The content directory inside the scripts directory.
pub const CONTENT_DIR: &str = "content";
pub const CALENDAR_FILE: &str = "calendar.toml";
pub const QUEUE_FILE: &str = "queue.toml";

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawWeekday {
    Number(u8),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    weekday: RawWeekday,
    name: String,
    #[serde(default)]
    intro: String,
    #[serde(default)]
    content: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default)]
    column: Vec<toml::Spanned<RawColumn>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: String,
    #[serde(default)]
    date: Option<String>,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    link: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueFile {
    #[serde(default)]
    item: Vec<toml::Spanned<RawItem>>,
}

const WEEKDAY_NAMES: [[&str; 4]; 7] = [
    ["monday", "mon", "星期一", "周一"],
    ["tuesday", "tue", "星期二", "周二"],
    ["wednesday", "wed", "星期三", "周三"],
    ["thursday", "thu", "星期四", "周四"],
    ["friday", "fri", "星期五", "周五"],
    ["saturday", "sat", "星期六", "周六"],
    ["sunday", "sun", "星期日", "周日"],
];

fn weekday(raw: &RawWeekday) -> Result<u8, String> {
    let found = match raw {
        RawWeekday::Number(n) => (1..=7).contains(n).then_some(*n),
        RawWeekday::Name(name) => {
            let name = name.trim().to_lowercase();
            WEEKDAY_NAMES
                .iter()
                .position(|names| names.contains(&name.as_str()))
                .map(|i| i as u8 + 1)
        }
    };
    found.ok_or_else(|| {
        "weekday must be 1 (Monday) … 7 (Sunday), \"tuesday\", \"tue\" or \"星期二\"".to_owned()
    })
}

/// Parses `content/calendar.toml` into the calendar's columns.
pub(crate) fn parse_calendar(src: &Source<'_>) -> Result<[Option<Column>; 7], ScriptError> {
    let parsed: CalendarFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut columns: [Option<Column>; 7] = Default::default();
    let mut first_at = [0usize; 7];
    for spanned in parsed.column {
        let start = spanned.span().start;
        let raw = spanned.into_inner();
        let day = weekday(&raw.weekday).map_err(|e| src.error(start, e))?;
        if raw.name.trim().is_empty() {
            return Err(src.error(start, "a column needs a name"));
        }
        let slot = &mut columns[usize::from(day - 1)];
        if slot.is_some() {
            let (line, _) = line_col(src.text, first_at[usize::from(day - 1)]);
            return Err(src.error(
                start,
                format!("weekday {day} already has a column (line {line}); one column a day"),
            ));
        }
        first_at[usize::from(day - 1)] = start;
        *slot = Some(Column {
            weekday: day,
            name: raw.name.trim().to_owned(),
            intro: raw.intro.trim().to_owned(),
            content: raw.content.trim().to_owned(),
        });
    }
    Ok(columns)
}

/// Parses `content/queue.toml` into the queue's items.
pub(crate) fn parse_queue(src: &Source<'_>) -> Result<Vec<Item>, ScriptError> {
    let parsed: QueueFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut items = Vec::with_capacity(parsed.item.len());
    let mut first_at: HashMap<String, usize> = HashMap::new();
    for spanned in parsed.item {
        let start = spanned.span().start;
        let raw = spanned.into_inner();
        check_identifier("id", &raw.id).map_err(|e| src.error(start, e))?;
        if let Some(&earlier) = first_at.get(&raw.id) {
            let (line, _) = line_col(src.text, earlier);
            return Err(src.error(
                start,
                format!("item {:?} is already defined at line {line}", raw.id),
            ));
        }
        first_at.insert(raw.id.clone(), start);
        let date = raw
            .date
            .as_deref()
            .map(|d| {
                NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| {
                    src.error(
                        start,
                        format!("item {:?}: date {d:?} must be YYYY-MM-DD", raw.id),
                    )
                })
            })
            .transpose()?;
        if raw.title.trim().is_empty() {
            return Err(src.error(start, format!("item {:?} needs a title", raw.id)));
        }
        items.push(Item {
            id: raw.id,
            date,
            title: raw.title.trim().to_owned(),
            body: raw.body.trim().to_owned(),
            link: raw.link.trim().to_owned(),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::content::Content;
    use std::path::Path;

    fn calendar(text: &str) -> Result<[Option<Column>; 7], ScriptError> {
        parse_calendar(&Source::new(text, Path::new("content/calendar.toml")))
    }

    fn queue(text: &str) -> Result<Vec<Item>, ScriptError> {
        parse_queue(&Source::new(text, Path::new("content/queue.toml")))
    }

    #[test]
    fn columns_by_number_english_or_chinese_weekday() {
        let columns = calendar(
            "[[column]]\nweekday = 2\nname = \"干货\"\n\n[[column]]\nweekday = \"thursday\"\nname = \"课程\"\n\n[[column]]\nweekday = \"星期五\"\nname = \"讨论\"\n",
        )
        .unwrap();
        let content = Content {
            columns,
            items: Vec::new(),
            feeds: Vec::new(),
        };
        assert_eq!(content.column(2).unwrap().name, "干货");
        assert_eq!(content.column(4).unwrap().name, "课程");
        assert_eq!(content.column(5).unwrap().name, "讨论");
        assert!(content.column(1).is_none());
        assert!(content.column(0).is_none() && content.column(8).is_none());
    }

    #[test]
    fn calendar_mistakes_point_at_the_column() {
        for (text, phrase) in [
            ("[[column]]\nweekday = 8\nname = \"x\"\n", "weekday"),
            (
                "[[column]]\nweekday = \"someday\"\nname = \"x\"\n",
                "weekday",
            ),
            ("[[column]]\nweekday = 1\nname = \" \"\n", "name"),
            (
                "[[column]]\nweekday = 1\nname = \"a\"\n[[column]]\nweekday = \"mon\"\nname = \"b\"\n",
                "already has a column (line 1)",
            ),
            (
                "[[column]]\nweekday = 1\nname = \"a\"\ncolour = 1\n",
                "colour",
            ),
        ] {
            let e = calendar(text).unwrap_err();
            assert!(e.reason.contains(phrase), "{text}: {e}");
        }
    }

    #[test]
    fn queue_items_dated_and_undated() {
        let items = queue(
            "[[item]]\nid = \"a\"\ntitle = \"A\"\n\n[[item]]\nid = \"b\"\ndate = \"2026-11-24\"\ntitle = \"B\"\n\n[[item]]\nid = \"c\"\ntitle = \"C\"\n",
        )
        .unwrap();
        let content = Content {
            columns: Default::default(),
            items,
            feeds: Vec::new(),
        };
        assert_eq!(content.undated_ids(), ["a", "c"]);
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        assert_eq!(
            content
                .dated(day)
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        for (text, phrase) in [
            ("[[item]]\nid = \"a b\"\ntitle = \"A\"\n", "id"),
            (
                "[[item]]\nid = \"a\"\ndate = \"24/11/2026\"\ntitle = \"A\"\n",
                "YYYY-MM-DD",
            ),
            ("[[item]]\nid = \"a\"\ntitle = \"\"\n", "title"),
            (
                "[[item]]\nid = \"a\"\ntitle = \"A\"\n[[item]]\nid = \"a\"\ntitle = \"B\"\n",
                "already defined at line 1",
            ),
        ] {
            let e = queue(text).unwrap_err();
            assert!(e.reason.contains(phrase), "{text}: {e}");
        }
    }
}
