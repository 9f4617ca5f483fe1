//! Request headers with WebDAV meaning: `Depth`, `If-Match` /
//! `If-None-Match`, and `Prefer: return=minimal` / `Brief`.
//!
//! Each parser takes the header's text (the HTTP layer joins repeated
//! headers with ", ") and returns a typed value or a 400 [`DavError`].

use crate::dav::error::DavError;

/// The `Depth` header (RFC 4918 §10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Zero,
    One,
    Infinity,
}

impl Depth {
    /// `None` when the header is absent: the default differs by method
    /// (PROPFIND: infinity, REPORT: 0), so the handler chooses.
    pub fn parse(value: Option<&str>) -> Result<Option<Depth>, DavError> {
        let Some(v) = value else { return Ok(None) };
        match v.trim().to_ascii_lowercase().as_str() {
            "0" => Ok(Some(Depth::Zero)),
            "1" => Ok(Some(Depth::One)),
            "infinity" => Ok(Some(Depth::Infinity)),
            other => Err(DavError::bad_request(format!(
                "Depth must be 0, 1 or infinity, not {other:?}"
            ))),
        }
    }
}

/// One entity tag, without its quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    pub tag: String,
}

impl EntityTag {
    /// Parses `"abc"`, `W/"abc"`, or (leniently, as some clients send it)
    /// a bare token `abc`.
    pub fn parse(s: &str) -> Result<EntityTag, DavError> {
        let s = s.trim();
        let (weak, rest) = match s.strip_prefix("W/").or_else(|| s.strip_prefix("w/")) {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let tag = if let Some(inner) = rest.strip_prefix('"') {
            inner
                .strip_suffix('"')
                .filter(|t| !t.contains('"'))
                .ok_or_else(|| DavError::bad_request(format!("malformed entity tag {s:?}")))?
        } else if !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != ',')
        {
            rest
        } else {
            return Err(DavError::bad_request(format!("malformed entity tag {s:?}")));
        };
        Ok(EntityTag {
            weak,
            tag: tag.to_string(),
        })
    }
}

/// The value of `If-Match` or `If-None-Match` (RFC 9110 §13.1.1–2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagCondition {
    /// `*`
    Any,
    Tags(Vec<EntityTag>),
}

impl EtagCondition {
    pub fn parse(value: &str) -> Result<EtagCondition, DavError> {
        let v = value.trim();
        if v == "*" {
            return Ok(EtagCondition::Any);
        }
        let mut tags = Vec::new();
        for part in split_list(v) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if part == "*" {
                return Err(DavError::bad_request(
                    "\"*\" cannot be combined with entity tags",
                ));
            }
            tags.push(EntityTag::parse(part)?);
        }
        if tags.is_empty() {
            return Err(DavError::bad_request("empty entity-tag list"));
        }
        Ok(EtagCondition::Tags(tags))
    }

    /// `If-Match` passes: `*` needs an existing resource, a list needs a
    /// strong match with the current etag (weak tags never match).
    /// `current` is the resource's etag, quoted or not.
    pub fn if_match(&self, current: Option<&str>) -> bool {
        let Some(current) = current else { return false };
        match self {
            EtagCondition::Any => true,
            EtagCondition::Tags(tags) => {
                let (cur_weak, cur) = bare(current);
                !cur_weak && tags.iter().any(|t| !t.weak && t.tag == cur)
            }
        }
    }

    /// `If-None-Match` passes: `*` needs no resource, a list needs no weak
    /// match with the current etag.
    pub fn if_none_match(&self, current: Option<&str>) -> bool {
        let Some(current) = current else { return true };
        match self {
            EtagCondition::Any => false,
            EtagCondition::Tags(tags) => {
                let (_, cur) = bare(current);
                !tags.iter().any(|t| t.tag == cur)
            }
        }
    }
}

/// Splits on commas outside quotes (an opaque tag may contain commas).
fn split_list(v: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&v[start..]);
    parts
}

fn bare(etag: &str) -> (bool, &str) {
    let e = etag.trim();
    let (weak, e) = match e.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, e),
    };
    (
        weak,
        e.strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(e),
    )
}

/// Whether the client asked for minimal answers: `Prefer: return=minimal`
/// (RFC 8144) or Apple's older `Brief: t`.
pub fn prefers_minimal(prefer: Option<&str>, brief: Option<&str>) -> bool {
    let by_prefer = prefer.is_some_and(|p| {
        p.split([',', ';'])
            .any(|t| t.trim().eq_ignore_ascii_case("return=minimal"))
    });
    let by_brief = brief.is_some_and(|b| b.trim().eq_ignore_ascii_case("t"));
    by_prefer || by_brief
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth() {
        assert_eq!(Depth::parse(None).unwrap(), None);
        assert_eq!(Depth::parse(Some("0")).unwrap(), Some(Depth::Zero));
        assert_eq!(Depth::parse(Some(" 1 ")).unwrap(), Some(Depth::One));
        assert_eq!(
            Depth::parse(Some("Infinity")).unwrap(),
            Some(Depth::Infinity)
        );
        assert_eq!(Depth::parse(Some("2")).unwrap_err().status, 400);
        assert!(Depth::parse(Some("")).is_err());
    }

    #[test]
    fn etag_lists() {
        let c = EtagCondition::parse(r#""a", W/"b",  "c,d""#).unwrap();
        assert_eq!(
            c,
            EtagCondition::Tags(vec![
                EntityTag {
                    weak: false,
                    tag: "a".into()
                },
                EntityTag {
                    weak: true,
                    tag: "b".into()
                },
                EntityTag {
                    weak: false,
                    tag: "c,d".into()
                },
            ])
        );
        assert_eq!(EtagCondition::parse(" * ").unwrap(), EtagCondition::Any);
        assert!(EtagCondition::parse("\"a").is_err());
        assert!(EtagCondition::parse("").is_err());
        assert!(EtagCondition::parse("*, \"a\"").is_err());
        assert_eq!(
            EtagCondition::parse("abc").unwrap(),
            EtagCondition::Tags(vec![EntityTag {
                weak: false,
                tag: "abc".into()
            }])
        );
    }

    #[test]
    fn if_match_is_strong_if_none_match_is_weak() {
        let c = EtagCondition::parse(r#"W/"b", "a""#).unwrap();
        assert!(c.if_match(Some("\"a\"")));
        assert!(c.if_match(Some("a")));
        assert!(!c.if_match(Some("\"b\"")), "weak tags never match strongly");
        assert!(!c.if_match(None));
        assert!(!c.if_none_match(Some("\"b\"")));
        assert!(c.if_none_match(Some("\"z\"")));
        assert!(c.if_none_match(None));
        assert!(EtagCondition::Any.if_match(Some("\"x\"")));
        assert!(!EtagCondition::Any.if_match(None));
        assert!(!EtagCondition::Any.if_none_match(Some("\"x\"")));
        assert!(EtagCondition::Any.if_none_match(None));
    }

    #[test]
    fn minimal() {
        assert!(prefers_minimal(Some("return=minimal"), None));
        assert!(prefers_minimal(Some("depth-noroot, return=minimal"), None));
        assert!(prefers_minimal(None, Some("T")));
        assert!(!prefers_minimal(Some("return=representation"), Some("f")));
        assert!(!prefers_minimal(None, None));
    }
}
