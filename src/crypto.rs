//! Secrets: random ids and tokens, token hashing, password hashing and the
//! AEAD that keeps OAuth tokens encrypted at rest.
//!
//! Nothing here logs; callers must not log what these functions take or give.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A random lower-case alphanumeric string (about 5.17 bits per character).
pub fn random_id(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A bearer secret: 256 random bits, URL-safe base64 (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, hex: what the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Constant-time comparison (for token hashes and the admin token).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Argon2id at m = 7 MiB, t = 5, p = 1: one of the five settings of equal
/// strength that OWASP's password storage cheat sheet lists (with m = 19
/// MiB, t = 2, which calbridge used before; hashes made with it still
/// verify, their parameters are in the hash). About the same work per
/// verification (11 ms against 14 ms, measured in one release build), in
/// a third of the memory: each verification running holds its working memory, and
/// CalDAV clients signing in together run several. Verified credentials
/// are cached by the auth layer (clients send them on every request).
fn argon2() -> Argon2<'static> {
    let params = argon2::Params::new(7 * 1024, 5, 1, None).expect("valid argon2 params");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// One Argon2 hashing at a time in the whole process. Each one fills
/// 7 MiB of memory: eight CalDAV clients connecting at once (or a burst of
/// wrong passwords) would otherwise hold eight such buffers together, and
/// the allocator keeps most of that resident afterwards.
static ARGON2_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn gated<T>(f: impl FnOnce() -> T) -> T {
    let _one = ARGON2_GATE.lock().unwrap_or_else(|p| p.into_inner());
    f()
}

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16-byte salt encodes");
    gated(|| {
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 hashing cannot fail with valid params")
            .to_string()
    })
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    verify_password_with(password, phc, &mut Argon2Memory::default())
}

/// Working memory for Argon2, kept between verifications. Allocating a
/// fresh buffer (7 MiB; 19 MiB for older hashes) for each one fragments
/// the allocator: a few hundred failed logins left the server at ~700 MB
/// resident.
#[derive(Default)]
pub struct Argon2Memory(Vec<argon2::Block>);

/// [`verify_password`] in `memory` (grown to what the hash's parameters
/// need, then reused). The computed hash is compared in constant time.
pub fn verify_password_with(password: &str, phc: &str, memory: &mut Argon2Memory) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(parsed.algorithm),
        argon2::Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.0.len() < blocks {
        memory.0.resize(blocks, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory.0[..blocks],
        )
        .is_ok()
        && ct_eq(&out, expected.as_bytes())
}

/// Authenticated encryption for secrets at rest (OAuth tokens), keyed from
/// `security.secret_key`. Each value gets a fresh 192-bit nonce.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    /// Derive the key as SHA-256("calbridge secret box v1" || secret).
    pub fn new(secret_key: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"calbridge secret box v1\0");
        h.update(secret_key.as_bytes());
        let key = h.finalize();
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain)
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + 24 + sealed.len());
        out.push(1); // format version
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// `None` when the value was not sealed with this key or was altered.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 25 || sealed[0] != 1 {
            return None;
        }
        self.cipher
            .decrypt(XNonce::from_slice(&sealed[1..25]), &sealed[25..])
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn reused_memory_verifies_like_fresh_memory() {
        let a = hash_password("first");
        let b = hash_password("second");
        let mut mem = Argon2Memory::default();
        for _ in 0..2 {
            assert!(verify_password_with("first", &a, &mut mem));
            assert!(!verify_password_with("second", &a, &mut mem));
            assert!(verify_password_with("second", &b, &mut mem));
            assert!(!verify_password_with("first", &b, &mut mem));
        }
        // The argon2 crate's own verifier agrees.
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(&a).unwrap();
        assert!(argon2().verify_password(b"first", &parsed).is_ok());
        assert!(!verify_password_with(
            "first",
            "$argon2id$v=19$garbage",
            &mut mem
        ));
    }

    #[test]
    fn hashes_made_with_the_former_parameters_still_verify() {
        // m = 19 MiB, t = 2 (calbridge before 7 MiB, t = 5), both orders
        // of memory through one reused buffer.
        let old = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(19 * 1024, 2, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let former = old.hash_password(b"app pass", &salt).unwrap().to_string();
        assert!(former.contains("m=19456,t=2,p=1"), "{former}");
        let current = hash_password("app pass");
        assert!(current.contains("m=7168,t=5,p=1"), "{current}");
        let mut mem = Argon2Memory::default();
        for h in [&current, &former, &current] {
            assert!(verify_password_with("app pass", h, &mut mem));
            assert!(!verify_password_with("app pas", h, &mut mem));
        }
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "garbage"));
    }

    #[test]
    fn secret_box_round_trips_and_detects_tampering() {
        let b = SecretBox::new("k1");
        let sealed = b.seal(b"refresh-token-123");
        assert!(!sealed.windows(17).any(|w| w == b"refresh-token-123"));
        assert_eq!(b.open(&sealed).unwrap(), b"refresh-token-123");
        assert!(SecretBox::new("k2").open(&sealed).is_none());
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.open(&bad).is_none());
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
