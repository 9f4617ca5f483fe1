//! Google Calendar API v3: calendar list, identity, and the incremental
//! events pull (full pass from the window start, then `syncToken`; 410 →
//! the engine restarts a full pass). Mapping to iCalendar is in [`map`],
//! writes back (iCalendar → events) in [`write`].

pub mod map;
pub mod write;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::http::{Upstream, UpstreamError};
use super::provider::{Cursor, Page, RemoteChange};
use crate::model::account::RemoteCalendar;
use crate::model::Timestamp;

/// Path segments: everything but unreserved characters is encoded (Google
/// calendar ids contain `@` and `#`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub const PAGE_SIZE: u32 = 250;

#[derive(Clone)]
pub struct Google {
    pub api: Upstream,
    /// The versioned root, e.g. `https://www.googleapis.com/calendar/v3`.
    pub base: String,
}

fn rfc3339(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Google {
    pub fn new(api: Upstream, base: &url::Url) -> Self {
        Google {
            api,
            base: base.as_str().trim_end_matches('/').to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn calendar_path(id: &str) -> String {
        format!("/calendars/{}", utf8_percent_encode(id, SEGMENT))
    }

    /// The calendars the account can see.
    pub async fn calendars(&self, token: &str) -> Result<Vec<RemoteCalendar>, UpstreamError> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..100 {
            let url = self.url("/users/me/calendarList");
            let p = page.clone();
            let reply = self
                .api
                .send(|c| {
                    let mut r = c
                        .get(&url)
                        .bearer_auth(token)
                        .query(&[("maxResults", "250")]);
                    if let Some(p) = &p {
                        r = r.query(&[("pageToken", p)]);
                    }
                    r
                })
                .await?;
            let v: Value = reply.json()?;
            let items = v["items"]
                .as_array()
                .ok_or_else(|| UpstreamError::Garbage("calendarList without items".into()))?;
            for c in items {
                let Some(id) = c["id"].as_str() else { continue };
                let role = c["accessRole"].as_str().unwrap_or("reader");
                out.push(RemoteCalendar {
                    id: id.to_string(),
                    name: c["summaryOverride"]
                        .as_str()
                        .or(c["summary"].as_str())
                        .unwrap_or(id)
                        .to_string(),
                    color: c["backgroundColor"].as_str().map(str::to_string),
                    can_edit: matches!(role, "writer" | "owner"),
                    is_default: c["primary"].as_bool().unwrap_or(false),
                    timezone: c["timeZone"].as_str().map(str::to_string),
                });
            }
            match v["nextPageToken"].as_str() {
                Some(p) => page = Some(p.to_string()),
                None => return Ok(out),
            }
        }
        Err(UpstreamError::Garbage("calendarList never ended".into()))
    }

    /// The account's e-mail: the id of its primary calendar.
    pub async fn identity(&self, token: &str) -> Result<String, UpstreamError> {
        let url = self.url(&Self::calendar_path("primary"));
        let reply = self.api.send(|c| c.get(&url).bearer_auth(token)).await?;
        let v: Value = reply.json()?;
        v["id"]
            .as_str()
            .filter(|s| s.contains('@'))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| UpstreamError::Garbage("the primary calendar has no e-mail id".into()))
    }

    /// One page of the events pull for a calendar.
    pub async fn pull_page(
        &self,
        token: &str,
        calendar: &str,
        cursor: &Cursor,
        window_start: Timestamp,
    ) -> Result<Page, UpstreamError> {
        let url = self.url(&format!("{}/events", Self::calendar_path(calendar)));
        let mut query: Vec<(&str, String)> = vec![("maxResults", PAGE_SIZE.to_string())];
        match &cursor.token {
            Some(sync) => query.push(("syncToken", sync.clone())),
            None => query.push((
                "timeMin",
                rfc3339(cursor.window_start.unwrap_or(window_start)),
            )),
        }
        if let Some(p) = &cursor.page {
            query.push(("pageToken", p.clone()));
        }
        let reply = self
            .api
            .send(|c| c.get(&url).bearer_auth(token).query(&query))
            .await?;
        let v: Value = reply.json()?;
        let items = v["items"]
            .as_array()
            .ok_or_else(|| UpstreamError::Garbage("events list without items".into()))?;
        let defaults = v["defaultReminders"].clone();
        let mut changes = Vec::with_capacity(items.len());
        for item in items {
            changes.push(change_of(item, &defaults));
        }
        let (cursor, done) = if let Some(next) = v["nextPageToken"].as_str() {
            (
                Cursor {
                    token: cursor.token.clone(),
                    page: Some(next.to_string()),
                    window_start: Some(cursor.window_start.unwrap_or(window_start)),
                },
                false,
            )
        } else if let Some(sync) = v["nextSyncToken"].as_str() {
            (
                Cursor {
                    token: Some(sync.to_string()),
                    page: None,
                    window_start: None,
                },
                true,
            )
        } else {
            return Err(UpstreamError::Garbage(
                "a page with neither nextPageToken nor nextSyncToken".into(),
            ));
        };
        Ok(Page {
            changes,
            cursor,
            done,
        })
    }
}

/// What one listed item means for the store.
pub fn change_of(item: &Value, default_reminders: &Value) -> RemoteChange {
    let Some(id) = item["id"].as_str().filter(|s| !s.is_empty()) else {
        return RemoteChange::Skip {
            item: "?".into(),
            reason: "an event without an id".into(),
        };
    };
    let cancelled = item["status"].as_str() == Some("cancelled");
    match item["recurringEventId"].as_str() {
        // An exception (possibly cancelled: it becomes an EXDATE).
        Some(master) => {
            if item.get("originalStartTime").is_none() {
                return RemoteChange::Skip {
                    item: id.into(),
                    reason: "an exception without originalStartTime".into(),
                };
            }
            RemoteChange::Upsert {
                series: master.to_string(),
                item: id.to_string(),
                json: serde_json::to_vec(item).expect("JSON values serialize"),
            }
        }
        None if cancelled => RemoteChange::Remove {
            series: id.to_string(),
            item: id.to_string(),
        },
        None => {
            if let Err(e) = serde_json::from_value::<map::GEvent>(item.clone()) {
                return RemoteChange::Skip {
                    item: id.into(),
                    reason: format!("unreadable event: {e}"),
                };
            }
            let mut item = item.clone();
            if item["reminders"]["useDefault"].as_bool() == Some(true)
                && default_reminders.is_array()
            {
                item["_defaultReminders"] = default_reminders.clone();
            }
            RemoteChange::Upsert {
                series: id.to_string(),
                item: id.to_string(),
                json: serde_json::to_vec(&item).expect("JSON values serialize"),
            }
        }
    }
}
