//! Microsoft Graph v1.0: identity, calendar list, `calendarView/delta`
//! pages (instances only; the window is fixed per round by the provider),
//! and whole-series fetches (master + instances) so a recurring series is
//! stored as one object. Mapping is in [`map`], recurrence in
//! [`recurrence`], zone names in [`zones`], writes back (iCalendar →
//! events) in [`write`].

pub mod map;
pub mod recurrence;
pub mod write;
pub mod zones;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::http::{Upstream, UpstreamError};
use super::provider::{Cursor, Page, RemoteChange};
use crate::model::account::RemoteCalendar;
use crate::model::Timestamp;

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Events per delta page.
pub const PAGE_SIZE: u32 = 100;

/// How far ahead the delta window reaches. Graph lists instances, so an
/// unlimited window is impossible; series are still published whole (their
/// master carries the RRULE).
pub const HORIZON: i64 = 2 * 366 * 86_400;

/// Graph allows 4 concurrent requests per mailbox.
pub const MAILBOX_CONCURRENCY: usize = 4;

#[derive(Clone)]
pub struct Graph {
    pub api: Upstream,
    pub base: String,
}

fn iso(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

const PREFER: &str = "odata.maxpagesize=100, outlook.body-content-type=\"text\"";

impl Graph {
    pub fn new(api: Upstream, base: &url::Url) -> Self {
        Graph {
            api,
            base: base.as_str().trim_end_matches('/').to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Only links on the configured API host are followed (a page cannot
    /// send calbridge elsewhere).
    fn checked_link(&self, link: &str) -> Result<String, UpstreamError> {
        let base =
            url::Url::parse(&self.base).map_err(|_| UpstreamError::Garbage("bad base".into()))?;
        let l = url::Url::parse(link)
            .map_err(|_| UpstreamError::Garbage(format!("unreadable link {link:?}")))?;
        if l.scheme() != base.scheme()
            || l.host_str() != base.host_str()
            || l.port_or_known_default() != base.port_or_known_default()
        {
            return Err(UpstreamError::Garbage(
                "a paging link points to another host".into(),
            ));
        }
        Ok(link.to_string())
    }

    pub async fn identity(&self, token: &str) -> Result<String, UpstreamError> {
        let url = self.url("/me");
        let reply = self.api.send(|c| c.get(&url).bearer_auth(token)).await;
        match reply {
            Ok(r) => {
                let v: Value = r.json()?;
                v["mail"]
                    .as_str()
                    .or(v["userPrincipalName"].as_str())
                    .filter(|s| s.contains('@'))
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(|| UpstreamError::Garbage("/me has no mail".into()))
            }
            // Without User.Read: the default calendar's owner.
            Err(UpstreamError::Refused { .. }) | Err(UpstreamError::NotFound) => {
                let url = self.url("/me/calendar");
                let r = self.api.send(|c| c.get(&url).bearer_auth(token)).await?;
                let v: Value = r.json()?;
                v["owner"]["address"]
                    .as_str()
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(|| {
                        UpstreamError::Garbage("the default calendar has no owner".into())
                    })
            }
            Err(e) => Err(e),
        }
    }

    pub async fn calendars(&self, token: &str) -> Result<Vec<RemoteCalendar>, UpstreamError> {
        let mut out = Vec::new();
        let mut url = self.url("/me/calendars?$top=100");
        for _ in 0..100 {
            let u = url.clone();
            let v: Value = self
                .api
                .send(|c| c.get(&u).bearer_auth(token))
                .await?
                .json()?;
            let items = v["value"]
                .as_array()
                .ok_or_else(|| UpstreamError::Garbage("calendars without value".into()))?;
            for c in items {
                let Some(id) = c["id"].as_str() else { continue };
                out.push(RemoteCalendar {
                    id: id.to_string(),
                    name: c["name"].as_str().unwrap_or(id).to_string(),
                    color: c["hexColor"]
                        .as_str()
                        .filter(|h| h.starts_with('#'))
                        .map(str::to_string),
                    can_edit: c["canEdit"].as_bool().unwrap_or(false),
                    is_default: c["isDefaultCalendar"].as_bool().unwrap_or(false),
                    timezone: None,
                });
            }
            match v["@odata.nextLink"].as_str() {
                Some(next) => url = self.checked_link(next)?,
                None => return Ok(out),
            }
        }
        Err(UpstreamError::Garbage(
            "the calendar list never ended".into(),
        ))
    }

    /// One delta page.
    pub async fn pull_page(
        &self,
        token: &str,
        calendar: &str,
        cursor: &Cursor,
        window_start: Timestamp,
    ) -> Result<Page, UpstreamError> {
        let start = cursor.window_start.unwrap_or(window_start);
        let url = match (&cursor.page, &cursor.token) {
            (Some(next), _) => self.checked_link(next)?,
            (None, Some(delta)) => self.checked_link(delta)?,
            (None, None) => format!(
                "{}/me/calendars/{}/calendarView/delta?startDateTime={}&endDateTime={}",
                self.base,
                utf8_percent_encode(calendar, SEGMENT),
                iso(start),
                iso(start + HORIZON)
            ),
        };
        let v: Value = self
            .api
            .send(|c| c.get(&url).bearer_auth(token).header("Prefer", PREFER))
            .await?
            .json()?;
        let items = v["value"]
            .as_array()
            .ok_or_else(|| UpstreamError::Garbage("a delta page without value".into()))?;
        let mut changes = Vec::with_capacity(items.len());
        for item in items {
            changes.push(change_of(item));
        }
        let (cursor, done) = if let Some(next) = v["@odata.nextLink"].as_str() {
            (
                Cursor {
                    token: cursor.token.clone(),
                    page: Some(self.checked_link(next)?),
                    window_start: Some(start),
                },
                false,
            )
        } else if let Some(delta) = v["@odata.deltaLink"].as_str() {
            (
                Cursor {
                    token: Some(self.checked_link(delta)?),
                    page: None,
                    window_start: Some(start),
                },
                true,
            )
        } else {
            return Err(UpstreamError::Garbage(
                "a delta page with neither nextLink nor deltaLink".into(),
            ));
        };
        Ok(Page {
            changes,
            cursor,
            done,
        })
    }

    /// A whole series: the master and every instance in the window (plain
    /// occurrences as compact records). Empty when the series is gone.
    pub async fn fetch_series(
        &self,
        token: &str,
        series: &str,
        window_start: Timestamp,
    ) -> Result<Vec<(String, Vec<u8>)>, UpstreamError> {
        let url = self.url(&format!(
            "/me/events/{}",
            utf8_percent_encode(series, SEGMENT)
        ));
        let master: Value = match self
            .api
            .send(|c| c.get(&url).bearer_auth(token).header("Prefer", PREFER))
            .await
        {
            Ok(r) => r.json()?,
            Err(UpstreamError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if master["isCancelled"].as_bool() == Some(true) {
            return Ok(Vec::new());
        }
        let mut items = vec![(
            series.to_string(),
            serde_json::to_vec(&master).expect("JSON"),
        )];
        if master["type"].as_str() != Some("seriesMaster") {
            return Ok(items);
        }
        let (ws, we) = (window_start, window_start + HORIZON);
        let mut next = Some(format!(
            "{}/me/events/{}/instances?startDateTime={}&endDateTime={}&$top=500",
            self.base,
            utf8_percent_encode(series, SEGMENT),
            iso(ws),
            iso(we)
        ));
        let mut pages = 0;
        while let Some(u) = next.take() {
            pages += 1;
            if pages > 1000 {
                return Err(UpstreamError::Garbage(
                    "the instance list never ended".into(),
                ));
            }
            let v: Value = self
                .api
                .send(|c| c.get(&u).bearer_auth(token).header("Prefer", PREFER))
                .await?
                .json()?;
            let list = v["value"]
                .as_array()
                .ok_or_else(|| UpstreamError::Garbage("instances without value".into()))?;
            for inst in list {
                let Some(id) = inst["id"].as_str() else {
                    continue;
                };
                if inst["isCancelled"].as_bool() == Some(true) {
                    continue;
                }
                let json = if inst["type"].as_str() == Some("exception") {
                    serde_json::to_vec(inst).expect("JSON")
                } else {
                    serde_json::to_vec(&json!({
                        "id": id,
                        "type": inst["type"],
                        "originalStart": inst["originalStart"],
                    }))
                    .expect("JSON")
                };
                items.push((id.to_string(), json));
            }
            if let Some(n) = v["@odata.nextLink"].as_str() {
                next = Some(self.checked_link(n)?);
            }
        }
        items.push((
            map::WINDOW_ITEM.to_string(),
            serde_json::to_vec(&json!({"start": ws, "end": we})).expect("JSON"),
        ));
        Ok(items)
    }
}

/// What one delta item means.
pub fn change_of(item: &Value) -> RemoteChange {
    let Some(id) = item["id"].as_str().filter(|s| !s.is_empty()) else {
        return RemoteChange::Skip {
            item: "?".into(),
            reason: "an event without an id".into(),
        };
    };
    if item.get("@removed").is_some() {
        return RemoteChange::RemoveUnknown {
            item: id.to_string(),
        };
    }
    match item["type"].as_str() {
        Some("occurrence") | Some("exception") => match item["seriesMasterId"].as_str() {
            Some(m) => RemoteChange::SeriesTouched {
                series: m.to_string(),
            },
            None => RemoteChange::Skip {
                item: id.into(),
                reason: "an instance without seriesMasterId".into(),
            },
        },
        Some("seriesMaster") => RemoteChange::SeriesTouched {
            series: id.to_string(),
        },
        _ => {
            if item["isCancelled"].as_bool() == Some(true) {
                return RemoteChange::Remove {
                    series: id.to_string(),
                    item: id.to_string(),
                };
            }
            if let Err(e) = serde_json::from_value::<map::GraphEvent>(item.clone()) {
                return RemoteChange::Skip {
                    item: id.into(),
                    reason: format!("unreadable event: {e}"),
                };
            }
            RemoteChange::ReplaceSeries {
                series: id.to_string(),
                items: vec![(id.to_string(), serde_json::to_vec(item).expect("JSON"))],
            }
        }
    }
}
