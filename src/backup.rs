//! Backup and restore of a whole store.
//!
//! A backup is a gzip-compressed stream of JSON lines:
//! - a header `{"format":"calbridge-backup","version":1,"schema":N,"created":…}`;
//! - one record per key `{"t":"<tree>","k":"<base64>","v":"<base64>"}`,
//!   taken with [`Store::snapshot`], so all trees are as of one moment;
//! - a trailer `{"end":true,"records":N,"sha256":"…"}` over the record
//!   lines, so a truncated or altered file is refused, not half restored.
//!
//! Secrets stay as they are in the store: token hashes, Argon2 hashes and
//! sealed OAuth tokens (readable only with the same `security.secret_key`).

use std::io::{BufRead, BufReader, Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::store::db::SCHEMA_VERSION;
use crate::store::{Batch, Store, StoreError, Tree};

const FORMAT: &str = "calbridge-backup";
const VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not a calbridge backup: {0}")]
    Format(String),
    #[error("the target store is not empty ({0} has data); restore into a new data directory")]
    NotEmpty(&'static str),
}

/// What a backup or restore moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupStats {
    pub records: u64,
    pub bytes: u64,
}

fn tree_named(name: &str) -> Option<Tree> {
    Tree::ALL.iter().copied().find(|t| t.name() == name)
}

/// Write a consistent backup of `store` to `out`.
pub fn write_backup(store: &dyn Store, out: impl Write) -> Result<BackupStats, BackupError> {
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let header = json!({
        "format": FORMAT,
        "version": VERSION,
        "schema": SCHEMA_VERSION,
        "created": chrono::Utc::now().to_rfc3339(),
    });
    writeln!(gz, "{header}")?;
    let mut hash = Sha256::new();
    let mut stats = BackupStats::default();
    let mut io_error: Option<std::io::Error> = None;
    store
        .snapshot(&mut |tree, k, v| {
            let line = json!({"t": tree.name(), "k": STANDARD.encode(k), "v": STANDARD.encode(v)})
                .to_string();
            hash.update(line.as_bytes());
            hash.update(b"\n");
            stats.records += 1;
            stats.bytes += (k.len() + v.len()) as u64;
            if let Err(e) = writeln!(gz, "{line}") {
                io_error = Some(e);
                return Err(StoreError::Backend("writing the backup failed".into()));
            }
            Ok(())
        })
        .map_err(|e| match io_error.take() {
            Some(io) => BackupError::Io(io),
            None => BackupError::Store(e),
        })?;
    let trailer = json!({"end": true, "records": stats.records, "sha256": crate::crypto::hex(&hash.finalize())});
    writeln!(gz, "{trailer}")?;
    gz.finish()?.flush()?;
    Ok(stats)
}

/// Restore a backup into an empty store. The whole file is checked
/// (header, every record, count and checksum) before anything is written.
pub fn restore(store: &dyn Store, input: impl Read) -> Result<BackupStats, BackupError> {
    for t in Tree::ALL {
        // A freshly opened store has only its schema version.
        let n = store.len(*t);
        if n > usize::from(*t == Tree::Meta) {
            return Err(BackupError::NotEmpty(t.name()));
        }
    }
    let mut records: Vec<(Tree, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut hash = Sha256::new();
    let mut lines = BufReader::new(flate2::read::GzDecoder::new(input)).lines();
    let unreadable = |e: std::io::Error| {
        BackupError::Format(format!("the file is damaged or not a backup ({e})"))
    };
    let header: serde_json::Value = match lines.next() {
        Some(l) => serde_json::from_str(&l.map_err(unreadable)?)
            .map_err(|e| BackupError::Format(format!("header: {e}")))?,
        None => return Err(BackupError::Format("the file is empty".into())),
    };
    if header["format"] != FORMAT || header["version"].as_u64() != Some(VERSION) {
        return Err(BackupError::Format(format!("unknown header {header}")));
    }
    match header["schema"].as_u64() {
        Some(v) if v <= u64::from(SCHEMA_VERSION) => {}
        other => {
            return Err(BackupError::Format(format!(
            "the backup's schema version {other:?} is newer than this calbridge ({SCHEMA_VERSION})"
        )))
        }
    }
    let mut trailer = None;
    for line in lines {
        let line = line.map_err(unreadable)?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| BackupError::Format(format!("record {}: {e}", records.len() + 1)))?;
        if v["end"] == true {
            trailer = Some(v);
            break;
        }
        let tree = v["t"].as_str().and_then(tree_named).ok_or_else(|| {
            BackupError::Format(format!(
                "record {}: unknown tree {}",
                records.len() + 1,
                v["t"]
            ))
        })?;
        let field = |name: &str| -> Result<Vec<u8>, BackupError> {
            v[name]
                .as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or_else(|| {
                    BackupError::Format(format!("record {}: bad {name}", records.len() + 1))
                })
        };
        let (k, val) = (field("k")?, field("v")?);
        hash.update(line.as_bytes());
        hash.update(b"\n");
        records.push((tree, k, val));
    }
    let trailer =
        trailer.ok_or_else(|| BackupError::Format("the file is truncated (no trailer)".into()))?;
    if trailer["records"].as_u64() != Some(records.len() as u64) {
        return Err(BackupError::Format(format!(
            "the trailer announces {} records, the file has {}",
            trailer["records"],
            records.len()
        )));
    }
    if trailer["sha256"].as_str() != Some(crate::crypto::hex(&hash.finalize()).as_str()) {
        return Err(BackupError::Format(
            "the checksum does not match: the file is damaged".into(),
        ));
    }
    let mut stats = BackupStats::default();
    let mut batch = Batch::new();
    for (tree, k, v) in records {
        stats.records += 1;
        stats.bytes += (k.len() + v.len()) as u64;
        batch.put(tree, k, v);
        if batch.ops.len() >= 5000 {
            store.commit(std::mem::take(&mut batch))?;
        }
    }
    store.commit(batch)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn filled() -> SledStore {
        let s = SledStore::temporary().unwrap();
        let mut b = Batch::new();
        b.put(Tree::Meta, "schema_version", "1");
        for i in 0..300u32 {
            b.put(Tree::Events, format!("cal\0{i}.ics"), vec![i as u8; 64]);
            b.put(
                Tree::Bodies,
                format!("cal\0{i}.ics"),
                format!("BEGIN:VCALENDAR {i}"),
            );
        }
        b.put(Tree::Feeds, "fd_1", "{}");
        s.commit(b).unwrap();
        s
    }

    fn dump(s: &dyn Store) -> Vec<(Tree, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        s.snapshot(&mut |t, k, v| {
            out.push((t, k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn round_trip_restores_every_key() {
        let src = filled();
        let mut file = Vec::new();
        let stats = write_backup(&src, &mut file).unwrap();
        assert_eq!(stats.records, 602);
        let dst = SledStore::temporary().unwrap();
        let back = restore(&dst, file.as_slice()).unwrap();
        assert_eq!(back.records, 602);
        assert_eq!(dump(&src), dump(&dst));
    }

    #[test]
    fn damaged_truncated_or_foreign_files_are_refused_before_writing() {
        let src = filled();
        let mut file = Vec::new();
        write_backup(&src, &mut file).unwrap();
        // Decompress, alter one record, recompress.
        let mut text = String::new();
        flate2::read::GzDecoder::new(file.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        let altered = text.replacen("\"t\":\"bodies\"", "\"t\":\"events\"", 1);
        let truncated: String = text.lines().take(50).map(|l| format!("{l}\n")).collect();
        for (name, body) in [
            ("altered", altered),
            ("truncated", truncated),
            ("foreign", "{\"hello\":1}\n".to_string()),
        ] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(body.as_bytes()).unwrap();
            let dst = SledStore::temporary().unwrap();
            let err = restore(&dst, gz.finish().unwrap().as_slice()).unwrap_err();
            assert!(matches!(err, BackupError::Format(_)), "{name}: {err}");
            assert_eq!(
                dst.len(Tree::Events) + dst.len(Tree::Bodies),
                0,
                "{name}: nothing written"
            );
        }
        let dst = SledStore::temporary().unwrap();
        assert!(restore(&dst, b"not gzip at all".as_slice()).is_err());
    }

    #[test]
    fn restore_refuses_a_store_with_data() {
        let src = filled();
        let mut file = Vec::new();
        write_backup(&src, &mut file).unwrap();
        let dst = filled();
        assert!(matches!(
            restore(&dst, file.as_slice()),
            Err(BackupError::NotEmpty(_))
        ));
    }
}
