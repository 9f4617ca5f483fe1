//! TEXT value escaping (RFC 5545 §3.3.11).

/// Escape plain text for a TEXT value: backslash, `;`, `,` and line breaks.
/// CR and CRLF become `\n`, so no text can start a new content line.
pub fn escape(plain: &str) -> String {
    let mut out = String::with_capacity(plain.len() + 8);
    let mut chars = plain.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Decode a TEXT value. Unknown escapes keep the escaped character, as most
/// readers do with `\:` from older Outlook versions.
pub fn unescape(value: &str) -> String {
    if !value.contains('\\') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Split a multi-valued TEXT value (e.g. CATEGORIES) on unescaped commas.
pub fn split_list(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            parts.push(unescape(&std::mem::take(&mut current)));
        } else {
            current.push(c);
        }
    }
    if escaped {
        current.push('\\');
    }
    parts.push(unescape(&current));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_unescape_are_inverse() {
        for s in [
            "plain",
            "a;b,c\\d",
            "line1\nline2",
            "tab\tkept",
            "",
            "é , ; \\n",
        ] {
            assert_eq!(unescape(&escape(s)), s);
        }
    }

    #[test]
    fn escape_neutralises_line_breaks() {
        let e = escape("x\r\nBEGIN:VEVENT\rY\nZ");
        assert!(!e.contains(['\r', '\n']));
        assert_eq!(unescape(&e), "x\nBEGIN:VEVENT\nY\nZ");
    }

    #[test]
    fn split_list_respects_escapes() {
        assert_eq!(split_list("a,b\\,c,d"), vec!["a", "b,c", "d"]);
    }
}
