//! The sled implementation of [`Store`].
//!
//! A batch runs as one sled transaction over the trees it touches, then the
//! log is flushed before `commit` returns. sled's flush writes the log with
//! `pwrite` + `sync_file_range`, so an acknowledged write survives the process
//! being killed; concurrent committers share one flush (group commit).

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{Batch, KvIter, Op, Store, StoreError, Tree};

pub struct SledStore {
    db: sled::Db,
    /// One handle per [`Tree`], indexed by [`Tree::index`]; opened once.
    trees: Vec<sled::Tree>,
    /// Commits hold it shared; a snapshot holds it exclusively, so a
    /// backup sees every tree as of one moment. A std lock: commits and
    /// snapshots run on blocking threads.
    barrier: std::sync::RwLock<()>,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Open (or create) the store in `dir`. `cache_bytes` bounds sled's page
    /// cache, which is most of the server's memory.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    StoreError::Backend(format!(
                        "the store at {} is in use by another calbridge process",
                        dir.display()
                    ))
                }
                other => StoreError::Backend(format!(
                    "cannot open the store at {}: {other}",
                    dir.display()
                )),
            })?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(SledStore {
            db,
            trees,
            barrier: std::sync::RwLock::new(()),
        })
    }

    /// A throw-away store (tests): nothing is written to disk on drop.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(backend)?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(SledStore {
            db,
            trees,
            barrier: std::sync::RwLock::new(()),
        })
    }

    fn tree(&self, t: Tree) -> &sled::Tree {
        &self.trees[t.index()]
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn iter_map(it: sled::Iter) -> KvIter<'static> {
    Box::new(it.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend)))
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree(tree)
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(backend)
    }

    fn range<'a>(&'a self, tree: Tree, start: &[u8], end: &[u8]) -> KvIter<'a> {
        if start >= end {
            return Box::new(std::iter::empty());
        }
        iter_map(self.tree(tree).range(start.to_vec()..end.to_vec()))
    }

    fn scan_prefix<'a>(&'a self, tree: Tree, prefix: &[u8]) -> KvIter<'a> {
        iter_map(self.tree(tree).scan_prefix(prefix))
    }

    fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let _shared = self.barrier.read().unwrap_or_else(|p| p.into_inner());
        let mut touched: Vec<Tree> = Vec::new();
        for op in &batch.ops {
            let t = match op {
                Op::Put(t, ..) | Op::Delete(t, ..) | Op::Expect(t, ..) => *t,
            };
            if !touched.contains(&t) {
                touched.push(t);
            }
        }
        let slot = |t: Tree| touched.iter().position(|x| *x == t).expect("touched");
        let handles: Vec<&sled::Tree> = touched.iter().map(|t| self.tree(*t)).collect();
        let result = handles.as_slice().transaction(|txs| {
            // Preconditions first, so a failed one writes nothing.
            for op in &batch.ops {
                if let Op::Expect(t, k, want) = op {
                    let have = txs[slot(*t)].get(k)?;
                    if have.as_deref() != want.as_deref() {
                        return Err(ConflictableTransactionError::Abort(()));
                    }
                }
            }
            for op in &batch.ops {
                match op {
                    Op::Put(t, k, v) => {
                        txs[slot(*t)].insert(k.as_slice(), v.as_slice())?;
                    }
                    Op::Delete(t, k) => {
                        txs[slot(*t)].remove(k.as_slice())?;
                    }
                    Op::Expect(..) => {}
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(())) => return Err(StoreError::Conflict),
            Err(TransactionError::Storage(e)) => return Err(backend(e)),
        }
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn len(&self, tree: Tree) -> usize {
        self.tree(tree).len()
    }

    fn snapshot(&self, f: &mut super::Visitor<'_>) -> Result<(), StoreError> {
        let _exclusive = self.barrier.write().unwrap_or_else(|p| p.into_inner());
        for t in Tree::ALL {
            for r in self.tree(*t).iter() {
                let (k, v) = r.map_err(backend)?;
                f(*t, &k, &v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_atomic_and_preconditions_hold() {
        let s = SledStore::temporary().unwrap();
        let mut b = Batch::new();
        b.put(Tree::Meta, "a", "1");
        b.put(Tree::Companies, "c1", "x");
        s.commit(b).unwrap();
        assert_eq!(s.get(Tree::Meta, b"a").unwrap().unwrap(), b"1");

        // A failed precondition writes nothing, not even the other trees.
        let mut b = Batch::new();
        b.put(Tree::Companies, "c2", "y");
        b.expect(Tree::Meta, "a", Some(b"2".to_vec()));
        assert!(matches!(s.commit(b), Err(StoreError::Conflict)));
        assert!(s.get(Tree::Companies, b"c2").unwrap().is_none());

        let mut b = Batch::new();
        b.expect(Tree::Meta, "a", Some(b"1".to_vec()));
        b.expect(Tree::Meta, "missing", None);
        b.delete(Tree::Meta, "a");
        s.commit(b).unwrap();
        assert!(s.get(Tree::Meta, b"a").unwrap().is_none());
    }

    #[test]
    fn ranges_and_prefixes_are_ordered_and_bounded() {
        let s = SledStore::temporary().unwrap();
        let mut b = Batch::new();
        for k in ["a\0b", "a\0a", "a\0c", "b\0a", "a"] {
            b.put(Tree::Events, k, k);
        }
        s.commit(b).unwrap();
        let keys: Vec<_> = s
            .scan_prefix(Tree::Events, b"a\0")
            .map(|r| String::from_utf8(r.unwrap().0).unwrap())
            .collect();
        assert_eq!(keys, vec!["a\0a", "a\0b", "a\0c"]);
        let keys: Vec<_> = s
            .range(Tree::Events, b"a\0b", b"b")
            .map(|r| String::from_utf8(r.unwrap().0).unwrap())
            .collect();
        assert_eq!(keys, vec!["a\0b", "a\0c"]);
        assert_eq!(s.range(Tree::Events, b"b", b"a").count(), 0);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path(), 8 << 20).unwrap();
            let mut b = Batch::new();
            b.put(Tree::Meta, "k", "v");
            s.commit(b).unwrap();
        }
        let s = SledStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(s.get(Tree::Meta, b"k").unwrap().unwrap(), b"v");
    }
}
