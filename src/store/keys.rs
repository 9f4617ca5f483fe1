//! Key encodings. Parts are joined with a NUL byte (ids and hrefs never
//! contain one); numbers are big-endian so byte order is numeric order.

/// Join key parts with NUL separators.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

/// `a \0` — the prefix of every key whose first part is `a`.
pub fn prefix(first: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(first.len() + 1);
    k.extend_from_slice(first);
    k.push(0);
    k
}

/// The first key after every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// An i64 as 8 bytes whose unsigned order equals the signed order.
pub fn ts(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn ts_from(b: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

pub fn seq(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn seq_from(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// The parts of a NUL-joined key.
pub fn split(k: &[u8]) -> Vec<&[u8]> {
    k.split(|b| *b == 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_numerically() {
        let values = [i64::MIN, -5, -1, 0, 1, 1_700_000_000, i64::MAX];
        for w in values.windows(2) {
            assert!(ts(w[0]) < ts(w[1]), "{} < {}", w[0], w[1]);
            assert_eq!(ts_from(&ts(w[0])), Some(w[0]));
        }
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"ab"), b"ac");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert!(prefix_end(b"cal\0").as_slice() > b"cal\0\xff\xff".as_slice());
    }
}
