//! What scheduled reports are made of, as data rather than template logic: the weekly calendar
//! of columns, the content queue (items for a date, and undated items each used once, in order)
//! and the feeds reports may quote. Loaded from `bot-scripts/content/` by [`crate::scripts`];
//! fetching feeds is the runtime's.

use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;

/// One weekly column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: u8,
    pub name: String,
    /// One line for the morning report.
    pub intro: String,
    /// The column's own post, for a job that posts it.
    pub content: String,
}

/// One item of the content queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub id: String,
    /// Used on this date (the job's local date); `None`: used once, in queue order.
    pub date: Option<NaiveDate>,
    pub title: String,
    pub body: String,
    pub link: String,
}

/// The calendar and the queue of one scripts version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// Columns by weekday (index 0 = Monday).
    pub columns: [Option<Column>; 7],
    /// In file order.
    pub items: Vec<Item>,
    /// The feeds reports may quote (`feeds.toml`), in file order.
    pub feeds: Vec<FeedSpec>,
}

impl Content {
    /// The column of a weekday (1 = Monday … 7 = Sunday).
    pub fn column(&self, weekday: u8) -> Option<&Column> {
        let index = usize::from(weekday.checked_sub(1)?);
        self.columns.get(index)?.as_ref()
    }

    /// The items dated `date`, in file order.
    pub fn dated(&self, date: NaiveDate) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.date == Some(date))
    }

    /// The undated items' ids, in queue order.
    pub fn undated_ids(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| i.date.is_none())
            .map(|i| i.id.clone())
            .collect()
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }
}

/// One declared feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSpec {
    /// The name templates use: `feeds.<name>` (letters, digits, `_`).
    pub name: String,
    pub url: String,
    /// Entries a report shows, newest first.
    pub items: usize,
    /// The longest a fetch may take.
    pub timeout: Duration,
    /// How often the feed is fetched.
    pub refresh: Duration,
    /// Entries older than this are not shown (`None`: any age).
    pub max_age: Option<Duration>,
}
