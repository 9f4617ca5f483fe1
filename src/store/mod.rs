//! Persistence: the small [`Store`] trait (ordered key-value trees, atomic
//! batches with preconditions, durable commits), its sled implementation,
//! and [`Db`], the typed layer that owns every key layout and index.
//!
//! Invariants:
//! - every write goes through one [`Batch`] committed atomically; a commit
//!   that returns `Ok` is durable (survives `kill -9`);
//! - only `db.rs` knows key layouts; nothing else builds keys;
//! - the trait is backend-neutral so PostgreSQL (or redb) can replace sled.

pub mod db;
pub mod keys;
pub mod sled_store;

pub use db::Db;
pub use sled_store::SledStore;

/// The named trees (tables). Keys are built by [`keys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// Schema version, admin token hash, server-wide settings.
    Meta,
    Companies,
    Groups,
    Staff,
    /// `email \0 staff` → (): CalDAV login lookup.
    StaffEmail,
    /// `company \0 "s"|"g" \0 id` and `group \0 staff` → (): who belongs where.
    Membership,
    Calendars,
    /// `staff \0 calendar` → (): a staff member's calendars.
    StaffCalendars,
    /// `staff \0 slug` → calendar id: the calendar a CalDAV path names,
    /// found without reading the staff member's other calendars.
    StaffCalendarSlugs,
    /// `calendar` → u64 big-endian: the change sequence (getctag, sync-token).
    CalSeq,
    /// `calendar \0 href` → [`crate::model::EventMeta`] JSON.
    Events,
    /// `calendar \0 href` → the raw iCalendar bytes.
    Bodies,
    /// `event id` → `calendar \0 href`.
    EventIds,
    /// `calendar \0 uid` → href (no-uid-conflict, upstream mapping).
    EventUids,
    /// `calendar \0 start(be) \0 href` → end(be): short events by start.
    EventTimes,
    /// `calendar \0 href` → start(be) end(be): long and recurring events.
    EventLong,
    /// `calendar \0 seq(be)` → change record: the sync-collection log,
    /// one row per href (its latest change).
    Changes,
    /// `calendar \0 href` → seq(be) of its deletion.
    Tombstones,
    Feeds,
    /// `token hash` → feed id.
    FeedTokens,
    /// `staff \0 id` → [`crate::model::AppPassword`] JSON.
    AppPasswords,
    /// Upstream accounts, OAuth state, outbox, conflicts, sync cursors.
    Accounts,
    AccountIdentities,
    OauthStates,
    Outbox,
    Conflicts,
    SyncState,
    /// `calendar \0 remote id` → href.
    RemoteIds,
    /// `target calendar \0 event id` → the key of the pending outbox entry
    /// for that event (one per event and target: later changes replace it).
    OutboxIndex,
    /// `calendar \0 series id \0 item id` → the provider's JSON of a series
    /// master or one of its exceptions, so an object can be rebuilt when
    /// only one part changes upstream.
    RemoteItems,
}

impl Tree {
    pub const ALL: &'static [Tree] = &[
        Tree::Meta,
        Tree::Companies,
        Tree::Groups,
        Tree::Staff,
        Tree::StaffEmail,
        Tree::Membership,
        Tree::Calendars,
        Tree::StaffCalendars,
        Tree::StaffCalendarSlugs,
        Tree::CalSeq,
        Tree::Events,
        Tree::Bodies,
        Tree::EventIds,
        Tree::EventUids,
        Tree::EventTimes,
        Tree::EventLong,
        Tree::Changes,
        Tree::Tombstones,
        Tree::Feeds,
        Tree::FeedTokens,
        Tree::AppPasswords,
        Tree::Accounts,
        Tree::AccountIdentities,
        Tree::OauthStates,
        Tree::Outbox,
        Tree::Conflicts,
        Tree::SyncState,
        Tree::RemoteIds,
        Tree::RemoteItems,
        Tree::OutboxIndex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Companies => "companies",
            Tree::Groups => "groups",
            Tree::Staff => "staff",
            Tree::StaffEmail => "staff_email",
            Tree::Membership => "membership",
            Tree::Calendars => "calendars",
            Tree::StaffCalendars => "staff_calendars",
            Tree::StaffCalendarSlugs => "staff_calendar_slugs",
            Tree::CalSeq => "cal_seq",
            Tree::Events => "events",
            Tree::Bodies => "bodies",
            Tree::EventIds => "event_ids",
            Tree::EventUids => "event_uids",
            Tree::EventTimes => "event_times",
            Tree::EventLong => "event_long",
            Tree::Changes => "changes",
            Tree::Tombstones => "tombstones",
            Tree::Feeds => "feeds",
            Tree::FeedTokens => "feed_tokens",
            Tree::AppPasswords => "app_passwords",
            Tree::Accounts => "accounts",
            Tree::AccountIdentities => "account_identities",
            Tree::OauthStates => "oauth_states",
            Tree::Outbox => "outbox",
            Tree::Conflicts => "conflicts",
            Tree::SyncState => "sync_state",
            Tree::RemoteIds => "remote_ids",
            Tree::RemoteItems => "remote_items",
            Tree::OutboxIndex => "outbox_index",
        }
    }

    pub fn index(self) -> usize {
        Tree::ALL
            .iter()
            .position(|t| *t == self)
            .expect("every tree is listed in ALL")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A precondition of the batch did not hold; nothing was written.
    #[error("the data changed concurrently")]
    Conflict,
    #[error("storage error: {0}")]
    Backend(String),
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
}

/// One operation of a [`Batch`].
#[derive(Debug, Clone)]
pub enum Op {
    Put(Tree, Vec<u8>, Vec<u8>),
    Delete(Tree, Vec<u8>),
    /// The batch applies only if the key currently holds exactly this value
    /// (`None`: absent).
    Expect(Tree, Vec<u8>, Option<Vec<u8>>),
}

/// Writes applied all together or not at all.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    pub fn put(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put(tree, key.into(), value.into()));
    }

    pub fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete(tree, key.into()));
    }

    pub fn expect(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: Option<Vec<u8>>) {
        self.ops.push(Op::Expect(tree, key.into(), value));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn extend(&mut self, other: Batch) {
        self.ops.extend(other.ops);
    }
}

/// Called with each key of a snapshot.
pub type Visitor<'a> = dyn FnMut(Tree, &[u8], &[u8]) -> Result<(), StoreError> + 'a;

pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + Send + 'a>;

/// Ordered key-value trees with atomic, durable batches.
pub trait Store: Send + Sync + 'static {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Keys in `[start, end)`, in order.
    fn range<'a>(&'a self, tree: Tree, start: &[u8], end: &[u8]) -> KvIter<'a>;

    /// Keys starting with `prefix`, in order.
    fn scan_prefix<'a>(&'a self, tree: Tree, prefix: &[u8]) -> KvIter<'a>;

    /// Apply a batch atomically; on `Ok` it is durable.
    fn commit(&self, batch: Batch) -> Result<(), StoreError>;

    /// Number of keys in a tree (for metrics and tests; may be O(n)).
    fn len(&self, tree: Tree) -> usize;

    /// Call `f` with every key of every tree, as of one moment: no commit
    /// lands while the snapshot runs (a consistent online backup).
    fn snapshot(&self, f: &mut Visitor<'_>) -> Result<(), StoreError>;

    fn is_empty(&self, tree: Tree) -> bool {
        self.len(tree) == 0
    }
}
