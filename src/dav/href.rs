//! Hrefs: decoding what clients send, encoding what we write.
//!
//! Owns the one rule for percent-encoding so that a path compares equal
//! however a client spelled it (Apple sends `@` raw, others send `%40`;
//! some send absolute URLs). Handlers work with decoded paths only; the
//! writer encodes on the way out. Must not: resolve paths against the
//! router or the store.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::error::DavError;

/// Characters written percent-encoded in hrefs: everything but unreserved
/// characters, `/` and the sub-delimiters clients already leave raw
/// (`:@!$'()*,;=`). `&` and `+` are encoded, since naive decoders turn
/// `+` into a space and `&` would need XML escaping anyway.
const HREF_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Decodes an href from a request body or header into a path: trims
/// whitespace, drops `scheme://authority` from absolute http(s) URLs and
/// percent-decodes. The result must be UTF-8 and must not contain NUL.
pub fn decode(raw: &str) -> Result<String, DavError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(DavError::bad_request("empty href"));
    }
    let path = strip_authority(raw);
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| DavError::bad_request(format!("href {raw:?} does not decode to UTF-8")))?;
    if decoded.contains('\0') {
        return Err(DavError::bad_request(format!("href {raw:?} contains NUL")));
    }
    Ok(decoded.into_owned())
}

fn strip_authority(raw: &str) -> &str {
    let lower_start = raw
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower_start.starts_with("https://") {
        &raw[8..]
    } else if lower_start.starts_with("http://") {
        &raw[7..]
    } else {
        return raw;
    };
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    }
}

/// Encodes a decoded path (or an absolute URI such as `mailto:a@b`) for an
/// `<D:href>`. `decode(&encode(p)) == p` for every path.
pub fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    out.extend(utf8_percent_encode(path, HREF_ENCODE));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_sign_encoded_or_not_decodes_the_same() {
        let a = decode("/dav/calendars/s1/work/a%40b.ics").unwrap();
        let b = decode("/dav/calendars/s1/work/a@b.ics").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, "/dav/calendars/s1/work/a@b.ics");
    }

    #[test]
    fn absolute_urls_keep_the_path() {
        assert_eq!(
            decode(" https://cal.example.com:8443/dav/x%20y/ ").unwrap(),
            "/dav/x y/"
        );
        assert_eq!(decode("HTTP://h").unwrap(), "/");
        assert_eq!(decode("mailto:a@b").unwrap(), "mailto:a@b");
    }

    #[test]
    fn bad_hrefs() {
        assert_eq!(decode("/a%ff").unwrap_err().status, 400);
        assert!(decode("/a%00").is_err());
        assert!(decode("  ").is_err());
    }

    #[test]
    fn encode_round_trips() {
        for p in [
            "/dav/calendars/s1/work/a@b.ics",
            "/dav/x y/100%/é?#&+.ics",
            "mailto:a+b@example.com",
        ] {
            let e = encode(p);
            assert!(!e.contains(' ') && !e.contains('?') && !e.contains('&'));
            assert_eq!(decode(&e).unwrap(), p);
        }
        assert_eq!(encode("/a b/c@d.ics"), "/a%20b/c@d.ics");
    }
}
