//! Accounts, their identities, OAuth states, per-calendar sync cursors and
//! the provider items mirrored events are built from.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{decode, encode, key, prefix, Db, DbError, DbResult};
use crate::model::account::{Account, OauthState, OAUTH_STATE_TTL};
use crate::model::{now, AccountId, CalendarId, CalendarSource, CompanyId, Provider, StaffId};
use crate::store::{Batch, StoreError, Tree};

fn identity_key(company: &CompanyId, provider: Provider, email: &str) -> Vec<u8> {
    key(&[
        company.as_str().as_bytes(),
        provider.as_str().as_bytes(),
        email.to_ascii_lowercase().as_bytes(),
    ])
}

fn staff_account_key(staff: &StaffId, account: &AccountId) -> Vec<u8> {
    key(&[staff.as_str().as_bytes(), b"a", account.as_str().as_bytes()])
}

impl Db {
    pub fn create_account(&self, a: &Account) -> DbResult<()> {
        let mut b = Batch::new();
        b.expect(
            Tree::Staff,
            a.staff.as_str(),
            self.store.get(Tree::Staff, a.staff.as_str().as_bytes())?,
        );
        b.expect(Tree::Accounts, a.id.as_str(), None);
        b.put(Tree::Accounts, a.id.as_str(), encode(a));
        b.put(
            Tree::Membership,
            staff_account_key(&a.staff, &a.id),
            Vec::new(),
        );
        Ok(self.store.commit(b)?)
    }

    pub fn account(&self, id: &AccountId) -> DbResult<Option<Account>> {
        self.get_json(Tree::Accounts, id.as_str().as_bytes())
    }

    pub fn accounts_of_staff(&self, staff: &StaffId) -> DbResult<Vec<Account>> {
        let p = key(&[staff.as_str().as_bytes(), b"a", b""]);
        let mut out = Vec::new();
        for id in self.scan_index(Tree::Membership, &p)? {
            if let Some(a) = self.account(&AccountId(id))? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Every account (the scheduler's work list).
    pub fn all_accounts(&self) -> DbResult<Vec<Account>> {
        self.scan_json(Tree::Accounts, b"")
    }

    /// Change an account with `f`, retrying if it changed concurrently.
    /// Returns the stored result; `NotFound` if it is gone.
    pub fn modify_account(
        &self,
        id: &AccountId,
        mut f: impl FnMut(&mut Account),
    ) -> DbResult<Account> {
        for _ in 0..16 {
            let raw = self
                .store
                .get(Tree::Accounts, id.as_str().as_bytes())?
                .ok_or(DbError::NotFound)?;
            let mut a: Account = decode(Tree::Accounts, &raw)?;
            f(&mut a);
            let mut b = Batch::new();
            b.expect(Tree::Accounts, id.as_str(), Some(raw));
            b.put(Tree::Accounts, id.as_str(), encode(&a));
            match self.store.commit(b) {
                Ok(()) => return Ok(a),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict.into())
    }

    /// Record that `account` holds this remote identity in its company.
    /// Refused (naming the holder's staff id) when another account does.
    pub fn claim_identity(&self, a: &Account, email: &str) -> DbResult<()> {
        let k = identity_key(&a.company, a.provider, email);
        if let Some(holder) = self.store.get(Tree::AccountIdentities, &k)? {
            let holder = AccountId(String::from_utf8_lossy(&holder).into_owned());
            if holder != a.id {
                if let Some(h) = self.account(&holder)? {
                    return Err(DbError::Duplicate(h.staff.to_string()));
                }
            }
        }
        let mut b = Batch::new();
        if let Some(old) = &a.email {
            if !old.eq_ignore_ascii_case(email) {
                b.delete(
                    Tree::AccountIdentities,
                    identity_key(&a.company, a.provider, old),
                );
            }
        }
        b.put(
            Tree::AccountIdentities,
            k,
            a.id.as_str().as_bytes().to_vec(),
        );
        Ok(self.store.commit(b)?)
    }

    /// Remove an account with its mirrored calendars (and their events),
    /// its identity, outbox entries and conflict log.
    pub fn delete_account(&self, id: &AccountId) -> DbResult<Account> {
        let a = self.account(id)?.ok_or(DbError::NotFound)?;
        let mut b = Batch::new();
        self.account_removal(&mut b, &a)?;
        for cal in self.calendars_of_account(&a)? {
            self.calendar_removal(&mut b, &cal)?;
        }
        self.store.commit(b)?;
        Ok(a)
    }

    /// Rows removing an account's own records (not its calendars).
    pub(super) fn account_removal(&self, b: &mut Batch, a: &Account) -> DbResult<()> {
        let id = &a.id;
        b.delete(Tree::Accounts, id.as_str());
        b.delete(Tree::Membership, staff_account_key(&a.staff, id));
        if let Some(e) = &a.email {
            let k = identity_key(&a.company, a.provider, e);
            if self.store.get(Tree::AccountIdentities, &k)?.as_deref()
                == Some(id.as_str().as_bytes())
            {
                b.delete(Tree::AccountIdentities, k);
            }
        }
        for tree in [Tree::Outbox, Tree::Conflicts] {
            for r in self
                .store
                .scan_prefix(tree, &prefix(id.as_str().as_bytes()))
            {
                let (k, _) = r?;
                b.delete(tree, k);
            }
        }
        for cal in self.calendars_of_account(a)? {
            let p = prefix(cal.id.as_str().as_bytes());
            for r in self.store.scan_prefix(Tree::OutboxIndex, &p) {
                let (k, _) = r?;
                b.delete(Tree::OutboxIndex, k);
            }
        }
        Ok(())
    }

    /// The mirrored calendars of an account.
    pub fn calendars_of_account(&self, a: &Account) -> DbResult<Vec<crate::model::Calendar>> {
        Ok(self
            .calendars_of_staff(&a.staff)?
            .into_iter()
            .filter(|c| matches!(&c.source, CalendarSource::Mirrored { account, .. } if account == &a.id))
            .collect())
    }

    /// The account's conflict log (newest last).
    pub fn conflicts_of_account(&self, id: &AccountId) -> DbResult<Vec<serde_json::Value>> {
        self.scan_json(Tree::Conflicts, &prefix(id.as_str().as_bytes()))
    }

    // ---- OAuth states ----

    /// Store a pending OAuth state under the hash of its value.
    pub fn put_oauth_state(&self, state_hash: &str, s: &OauthState) -> DbResult<()> {
        let mut b = Batch::new();
        b.expect(Tree::OauthStates, state_hash, None);
        b.put(Tree::OauthStates, state_hash, encode(s));
        // Drop expired states while we are here.
        let cutoff = now() - OAUTH_STATE_TTL;
        for r in self.store.scan_prefix(Tree::OauthStates, b"") {
            let (k, v) = r?;
            if let Ok(old) = decode::<OauthState>(Tree::OauthStates, &v) {
                if old.created < cutoff {
                    b.delete(Tree::OauthStates, k);
                }
            }
        }
        Ok(self.store.commit(b)?)
    }

    /// Consume a state: it is removed in the same step, so it works once.
    /// Expired states are removed and reported as absent.
    pub fn take_oauth_state(&self, state_hash: &str) -> DbResult<Option<OauthState>> {
        let Some(raw) = self.store.get(Tree::OauthStates, state_hash.as_bytes())? else {
            return Ok(None);
        };
        let mut b = Batch::new();
        b.expect(Tree::OauthStates, state_hash, Some(raw.clone()));
        b.delete(Tree::OauthStates, state_hash);
        match self.store.commit(b) {
            Ok(()) => {}
            // Someone else consumed it first.
            Err(StoreError::Conflict) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let s: OauthState = decode(Tree::OauthStates, &raw)?;
        if s.created + OAUTH_STATE_TTL < now() {
            return Ok(None);
        }
        Ok(Some(s))
    }

    // ---- sync cursors ----

    pub fn sync_state<T: DeserializeOwned>(&self, cal: &CalendarId) -> DbResult<Option<T>> {
        self.get_json(Tree::SyncState, cal.as_str().as_bytes())
    }

    pub fn set_sync_state<T: Serialize>(&self, cal: &CalendarId, v: &T) -> DbResult<()> {
        let mut b = Batch::new();
        b.expect(
            Tree::Calendars,
            cal.as_str(),
            self.store.get(Tree::Calendars, cal.as_str().as_bytes())?,
        );
        b.put(Tree::SyncState, cal.as_str(), encode(v));
        Ok(self.store.commit(b)?)
    }

    /// A batch row that stores a sync cursor (to commit with the page).
    pub fn sync_state_row<T: Serialize>(cal: &CalendarId, v: &T) -> Batch {
        let mut b = Batch::new();
        b.put(Tree::SyncState, cal.as_str(), encode(v));
        b
    }

    pub fn clear_sync_state(&self, cal: &CalendarId) -> DbResult<()> {
        let mut b = Batch::new();
        b.delete(Tree::SyncState, cal.as_str());
        Ok(self.store.commit(b)?)
    }

    // ---- provider items ----

    /// Every stored provider item of one series (master and exceptions).
    pub fn remote_items(&self, cal: &CalendarId, series: &str) -> DbResult<Vec<(String, Vec<u8>)>> {
        let p = key(&[cal.as_str().as_bytes(), series.as_bytes(), b""]);
        self.store
            .scan_prefix(Tree::RemoteItems, &p)
            .map(|r| {
                let (k, v) = r?;
                Ok((String::from_utf8_lossy(&k[p.len()..]).into_owned(), v))
            })
            .collect()
    }

    pub fn remote_item_row(cal: &CalendarId, series: &str, item: &str, json: &[u8]) -> Batch {
        let mut b = Batch::new();
        b.put(
            Tree::RemoteItems,
            key(&[cal.as_str().as_bytes(), series.as_bytes(), item.as_bytes()]),
            json.to_vec(),
        );
        b
    }

    /// Rows recording that a provider id (an instance, an exception) belongs
    /// to a series, so a removal naming only the id finds its series.
    pub fn item_owner_row(cal: &CalendarId, item: &str, series: &str) -> Batch {
        let mut b = Batch::new();
        b.put(
            Tree::RemoteIds,
            key(&[cal.as_str().as_bytes(), b"#", item.as_bytes()]),
            series.as_bytes().to_vec(),
        );
        b
    }

    /// The series a provider id belongs to (see [`Db::item_owner_row`]).
    pub fn series_of_item(&self, cal: &CalendarId, item: &str) -> DbResult<Option<String>> {
        Ok(self
            .store
            .get(
                Tree::RemoteIds,
                &key(&[cal.as_str().as_bytes(), b"#", item.as_bytes()]),
            )?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Rows removing the owner records of a series' ids.
    pub fn item_owner_removal(&self, cal: &CalendarId, items: &[String]) -> Batch {
        let mut b = Batch::new();
        for i in items {
            b.delete(
                Tree::RemoteIds,
                key(&[cal.as_str().as_bytes(), b"#", i.as_bytes()]),
            );
        }
        b
    }

    /// A row removing one stored item of a series.
    pub fn remote_item_removal_row(&self, cal: &CalendarId, series: &str, item: &str) -> Batch {
        let mut b = Batch::new();
        b.delete(
            Tree::RemoteItems,
            key(&[cal.as_str().as_bytes(), series.as_bytes(), item.as_bytes()]),
        );
        b
    }

    /// Rows removing every stored item of a series.
    pub fn remote_items_removal(&self, cal: &CalendarId, series: &str) -> DbResult<Batch> {
        let mut b = Batch::new();
        let p = key(&[cal.as_str().as_bytes(), series.as_bytes(), b""]);
        for r in self.store.scan_prefix(Tree::RemoteItems, &p) {
            let (k, _) = r?;
            b.delete(Tree::RemoteItems, k);
        }
        Ok(b)
    }

    /// Raw commit of rows built by the `*_row` helpers.
    pub fn commit_rows(&self, b: Batch) -> DbResult<()> {
        Ok(self.store.commit(b)?)
    }
}
