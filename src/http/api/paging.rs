//! Lists that page: `?limit=` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) and `?cursor=`
//! (the `next_cursor` of the page before, opaque to clients). Items come in a stable order by a
//! key; a page holds those after the cursor's key, and `next_cursor` is set while more follow.

use serde::Deserialize;

use super::ApiError;

/// Items a page holds when the request names no limit.
pub(super) const DEFAULT_LIMIT: usize = 100;
/// The most items a page may hold.
pub(super) const MAX_LIMIT: usize = 500;

/// `?limit=&cursor=` of a list request.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size asked for: 1 to [`MAX_LIMIT`], or 400.
    pub(super) fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(format!(
                "limit {n} must be 1 to {MAX_LIMIT}"
            ))),
        }
    }

    /// The cursor of a newest-first list keyed by id: the last id of the page before (the page
    /// holds older ones), or 400 for a cursor that is not one.
    pub(super) fn before_id(&self) -> Result<Option<u64>, ApiError> {
        self.cursor
            .as_deref()
            .map(|cursor| {
                cursor.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("cursor {cursor:?} is not one of ours"))
                })
            })
            .transpose()
    }
}

/// A newest-first page read with one item more than `limit` (so that the read tells whether
/// another page follows): the page, and its `next_cursor` — the last item's `key` — when one does.
pub(super) fn trim_page<T>(
    mut items: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = more.then(|| items.last().map(key)).flatten();
    (items, next_cursor)
}

/// One page of a list, and how many items matched in all.
#[derive(Debug)]
pub(super) struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    pub total: usize,
}

/// The page after `cursor` of `items` (already filtered, in ascending order of `key`).
pub(super) fn page<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> String,
    query: &PageQuery,
) -> Result<Page<T>, ApiError> {
    page_in(items, key, query, false)
}

/// The page after `cursor` of `items` in descending order of `key` (newest first).
pub(super) fn page_descending<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> String,
    query: &PageQuery,
) -> Result<Page<T>, ApiError> {
    page_in(items, key, query, true)
}

fn page_in<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> String,
    query: &PageQuery,
    descending: bool,
) -> Result<Page<T>, ApiError> {
    let limit = query.limit()?;
    let mut total = 0;
    let mut out = Vec::new();
    let mut more = false;
    for item in items {
        total += 1;
        if query
            .cursor
            .as_deref()
            .is_some_and(|cursor| match descending {
                false => key(&item).as_str() <= cursor,
                true => key(&item).as_str() >= cursor,
            })
        {
            continue;
        }
        if out.len() == limit {
            more = true;
            continue;
        }
        out.push(item);
    }
    let next_cursor = more.then(|| out.last().map(&key)).flatten();
    Ok(Page {
        items: out,
        next_cursor,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<usize>, cursor: Option<&str>) -> PageQuery {
        PageQuery {
            limit,
            cursor: cursor.map(str::to_owned),
        }
    }

    #[test]
    fn pages_walk_the_whole_list_once() {
        let items: Vec<String> = (0..7).map(|i| format!("g{i}")).collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = page(
                items.clone(),
                |s| s.clone(),
                &query(Some(3), cursor.as_deref()),
            )
            .unwrap();
            assert_eq!(page.total, 7);
            seen.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn newest_first_pages_walk_down() {
        let items: Vec<String> = (0..5).rev().map(|i| format!("t{i}")).collect();
        let first = page_descending(items.clone(), |s| s.clone(), &query(Some(2), None)).unwrap();
        assert_eq!(first.items, ["t4", "t3"]);
        let cursor = first.next_cursor.unwrap();
        let second = page_descending(items, |s| s.clone(), &query(Some(2), Some(&cursor))).unwrap();
        assert_eq!(second.items, ["t2", "t1"]);
        assert!(second.next_cursor.is_some());
    }

    #[test]
    fn a_full_last_page_has_no_next_cursor() {
        let items = vec!["a".to_owned(), "b".to_owned()];
        let page = page(items, |s| s.clone(), &query(Some(2), None)).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        assert!(query(Some(0), None).limit().is_err());
        assert!(query(Some(MAX_LIMIT + 1), None).limit().is_err());
        assert_eq!(query(None, None).limit().unwrap(), DEFAULT_LIMIT);
    }
}
