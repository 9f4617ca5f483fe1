//! Request paths under `/dav/`: splitting, decoding and the one rule for
//! which staff member a path may name.
//!
//! Owns: the URL layout (`/dav/principals/<staff>/`,
//! `/dav/calendars/<staff>/<calendar>/<object>`), percent-decoding per
//! segment (so an encoded `/`, `.` or `..` can never climb out of its
//! segment), and the identity check: the `<staff>` segment is the
//! authenticated staff member's id or e-mail (with `@` raw or encoded),
//! anything else is "not found" so nothing is told about other homes.
//! Must not: touch the store (the handlers look calendars and objects up).

use percent_encoding::percent_decode_str;

use crate::model::Staff;

/// Where a path points, before any store lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `/dav/`
    Root,
    /// `/dav/principals/`
    Principals,
    /// `/dav/principals/<staff>/`
    Principal,
    /// `/dav/calendars/`
    Calendars,
    /// `/dav/calendars/<staff>/`
    Home,
    /// `/dav/calendars/<staff>/<slug>/`
    Calendar { slug: String },
    /// `/dav/calendars/<staff>/<slug>/<name>`
    Object { slug: String, name: String },
}

/// A resolved path: the place, the decoded path as the client spelled it
/// (with the public prefix, and a trailing slash for collections), and
/// whether the client wrote a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub place: Place,
    /// The decoded path, `prefix + /dav/...`; hrefs of members extend it.
    pub path: String,
    pub trailing_slash: bool,
}

/// Why a path does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not under `/dav/`, not part of the layout, or another staff
    /// member's home: a 404 that tells nothing.
    NotFound,
    /// A `.` / `..` segment, an encoded `/` or `\`, NUL, or a segment
    /// that is not UTF-8 once decoded: 403.
    Forbidden,
}

/// Longest accepted segment (a calendar slug or an object name).
const MAX_SEGMENT: usize = 255;

/// Splits the path of a request URI (percent-encoded as sent) and
/// resolves it for `staff`. `prefix` is the path of `server.public_url`
/// (empty, or e.g. `/calbridge`); requests arrive without it (a proxy
/// strips it), hrefs in bodies may carry it.
pub fn from_uri(raw: &str, prefix: &str, staff: &Staff) -> Result<Located, PathError> {
    let mut segments = Vec::new();
    for s in raw.split('/') {
        let decoded = percent_decode_str(s)
            .decode_utf8()
            .map_err(|_| PathError::Forbidden)?;
        if decoded.contains(['/', '\\']) {
            return Err(PathError::Forbidden);
        }
        segments.push(decoded.into_owned());
    }
    resolve(segments, prefix, staff)
}

/// Resolves an already decoded path (an href from a request body, see
/// [`crate::dav::href::decode`]), with or without `prefix`.
pub fn from_decoded(path: &str, prefix: &str, staff: &Staff) -> Result<Located, PathError> {
    let path = match path.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest,
        _ => path,
    };
    if path.contains('\\') {
        return Err(PathError::Forbidden);
    }
    resolve(path.split('/').map(str::to_string).collect(), prefix, staff)
}

fn resolve(segments: Vec<String>, prefix: &str, staff: &Staff) -> Result<Located, PathError> {
    // A path starts with '/': the first segment is empty.
    let mut it = segments.into_iter();
    if it.next().as_deref() != Some("") {
        return Err(PathError::NotFound);
    }
    let mut segs: Vec<String> = it.collect();
    for s in &segs {
        if s == "." || s == ".." || s.contains('\0') {
            return Err(PathError::Forbidden);
        }
        if s.len() > MAX_SEGMENT || s.chars().any(char::is_control) {
            return Err(PathError::NotFound);
        }
    }
    let trailing_slash = segs.len() > 1 && segs.last().is_some_and(String::is_empty);
    if trailing_slash {
        segs.pop();
    }
    if segs.first().map(String::as_str) != Some("dav") || segs.iter().any(String::is_empty) {
        return Err(PathError::NotFound);
    }
    let rest = &segs[1..];
    let own = |seg: &str| is_own_segment(seg, staff);
    let place = match rest {
        [] => Place::Root,
        [p] if p == "principals" => Place::Principals,
        [p, who] if p == "principals" && own(who) => Place::Principal,
        [c] if c == "calendars" => Place::Calendars,
        [c, who] if c == "calendars" && own(who) => Place::Home,
        [c, who, slug] if c == "calendars" && own(who) => Place::Calendar { slug: slug.clone() },
        [c, who, slug, name] if c == "calendars" && own(who) && !trailing_slash => Place::Object {
            slug: slug.clone(),
            name: name.clone(),
        },
        _ => return Err(PathError::NotFound),
    };
    let collection = !matches!(place, Place::Object { .. });
    let mut path = String::with_capacity(prefix.len() + 64);
    path.push_str(prefix);
    for s in &segs {
        path.push('/');
        path.push_str(s);
    }
    if collection {
        path.push('/');
    }
    Ok(Located {
        place,
        path,
        trailing_slash,
    })
}

/// Whether a `<staff>` path segment names `staff`: the staff id exactly,
/// or the e-mail address without regard to case.
pub fn is_own_segment(seg: &str, staff: &Staff) -> bool {
    seg == staff.id.as_str() || (seg.contains('@') && seg.eq_ignore_ascii_case(&staff.email))
}

/// The path part of `server.public_url` without a trailing slash: the
/// prefix every href we write starts with.
pub fn public_prefix(public_url: &str) -> String {
    let after_scheme = public_url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(public_url);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CompanyId, StaffId};

    fn anna() -> Staff {
        Staff {
            id: StaffId("stf_annaannaanna".into()),
            company: CompanyId("cmp_acmeacmeacme".into()),
            name: "Anna".into(),
            email: "anna@acme.example".into(),
            timezone: "Europe/Berlin".into(),
            groups: vec![],
            created: 0,
        }
    }

    fn place(raw: &str) -> Result<Place, PathError> {
        from_uri(raw, "", &anna()).map(|l| l.place)
    }

    #[test]
    fn the_layout() {
        assert_eq!(place("/dav"), Ok(Place::Root));
        assert_eq!(place("/dav/"), Ok(Place::Root));
        assert_eq!(place("/dav/principals/"), Ok(Place::Principals));
        assert_eq!(
            place("/dav/principals/stf_annaannaanna/"),
            Ok(Place::Principal)
        );
        assert_eq!(
            place("/dav/principals/stf_annaannaanna"),
            Ok(Place::Principal)
        );
        assert_eq!(place("/dav/calendars"), Ok(Place::Calendars));
        assert_eq!(place("/dav/calendars/stf_annaannaanna/"), Ok(Place::Home));
        assert_eq!(
            place("/dav/calendars/stf_annaannaanna/appointments/"),
            Ok(Place::Calendar {
                slug: "appointments".into()
            })
        );
        assert_eq!(
            place("/dav/calendars/stf_annaannaanna/appointments/a%20b.ics"),
            Ok(Place::Object {
                slug: "appointments".into(),
                name: "a b.ics".into()
            })
        );
    }

    #[test]
    fn email_segments_raw_encoded_or_any_case() {
        for seg in [
            "anna@acme.example",
            "anna%40acme.example",
            "ANNA%40Acme.Example",
        ] {
            let l = from_uri(&format!("/dav/calendars/{seg}/"), "", &anna()).unwrap();
            assert_eq!(l.place, Place::Home);
        }
        let l = from_uri("/dav/calendars/anna%40acme.example/work/", "/cb", &anna()).unwrap();
        assert_eq!(l.path, "/cb/dav/calendars/anna@acme.example/work/");
    }

    #[test]
    fn other_homes_and_outside_paths_are_not_found() {
        for raw in [
            "/",
            "/davx/",
            "/feeds/x.ics",
            "/dav/calendars/stf_bobbobbobbob/",
            "/dav/calendars/bob@acme.example/appointments/",
            "/dav/principals/bob%40acme.example/",
            "/dav/calendars/stf_annaannaanna/appointments/x.ics/",
            "/dav/calendars/stf_annaannaanna/a/b/c",
            "/dav//calendars/",
            "/dav/other/",
        ] {
            assert_eq!(place(raw), Err(PathError::NotFound), "{raw}");
        }
    }

    #[test]
    fn traversal_is_forbidden() {
        for raw in [
            "/dav/../api/v1/companies",
            "/dav/calendars/stf_annaannaanna/%2e%2e/",
            "/dav/calendars/stf_annaannaanna/appointments/..%2f..%2fx",
            "/dav/calendars/stf_annaannaanna/appointments/a%5cb",
            "/dav/calendars/stf_annaannaanna/appointments/%ff",
            "/dav/calendars/stf_annaannaanna/appointments/a%00",
        ] {
            assert_eq!(place(raw), Err(PathError::Forbidden), "{raw}");
        }
    }

    #[test]
    fn decoded_hrefs_with_or_without_prefix() {
        let a = anna();
        let l = from_decoded("/cb/dav/calendars/anna@acme.example/w/x.ics", "/cb", &a).unwrap();
        assert_eq!(l.path, "/cb/dav/calendars/anna@acme.example/w/x.ics");
        let l = from_decoded("/dav/calendars/stf_annaannaanna/w/", "/cb", &a).unwrap();
        assert_eq!(l.path, "/cb/dav/calendars/stf_annaannaanna/w/");
        assert_eq!(
            from_decoded("/dav/calendars/x/../../y", "", &a),
            Err(PathError::Forbidden)
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(public_prefix("http://127.0.0.1:8080"), "");
        assert_eq!(public_prefix("https://h.example/"), "");
        assert_eq!(public_prefix("https://h.example/cal/"), "/cal");
    }
}
