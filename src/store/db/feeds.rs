//! Feeds: records by id, and the token-hash index the public route uses.

use super::{encode, Db, DbError, DbResult};
use crate::model::{Feed, FeedId, FeedScopeKind};
use crate::store::{Batch, Tree};

impl Db {
    pub fn create_feed(&self, feed: &Feed) -> DbResult<()> {
        let mut b = Batch::new();
        b.expect(Tree::FeedTokens, feed.token_hash.as_str(), None);
        b.put(Tree::Feeds, feed.id.as_str(), encode(feed));
        b.put(
            Tree::FeedTokens,
            feed.token_hash.as_str(),
            feed.id.as_str().as_bytes().to_vec(),
        );
        Ok(self.store.commit(b)?)
    }

    pub fn feed(&self, id: &FeedId) -> DbResult<Option<Feed>> {
        self.get_json(Tree::Feeds, id.as_str().as_bytes())
    }

    /// The feed a token hash opens, if any.
    pub fn feed_by_token_hash(&self, hash: &str) -> DbResult<Option<Feed>> {
        let Some(id) = self.store.get(Tree::FeedTokens, hash.as_bytes())? else {
            return Ok(None);
        };
        let feed: Option<Feed> = self.get_json(Tree::Feeds, &id)?;
        // The index and the record must agree (constant-time compare of the
        // hashes, so the lookup reveals nothing about near misses).
        Ok(feed.filter(|f| crate::crypto::ct_eq(f.token_hash.as_bytes(), hash.as_bytes())))
    }

    /// Replace the feed's token: the old URL stops working at once.
    pub fn rotate_feed(&self, id: &FeedId, new_hash: &str) -> DbResult<Feed> {
        let raw = self
            .store
            .get(Tree::Feeds, id.as_str().as_bytes())?
            .ok_or(DbError::NotFound)?;
        let mut feed: Feed = super::decode(Tree::Feeds, &raw)?;
        let mut b = Batch::new();
        b.expect(Tree::Feeds, id.as_str(), Some(raw));
        b.delete(Tree::FeedTokens, feed.token_hash.as_str());
        feed.token_hash = new_hash.to_string();
        feed.generation += 1;
        b.put(Tree::FeedTokens, new_hash, id.as_str().as_bytes().to_vec());
        b.put(Tree::Feeds, id.as_str(), encode(&feed));
        self.store.commit(b)?;
        Ok(feed)
    }

    pub fn delete_feed(&self, id: &FeedId) -> DbResult<Feed> {
        let feed = self.feed(id)?.ok_or(DbError::NotFound)?;
        let mut b = Batch::new();
        self.feed_removal(&mut b, &feed);
        self.store.commit(b)?;
        Ok(feed)
    }

    pub(super) fn feed_removal(&self, b: &mut Batch, feed: &Feed) {
        b.delete(Tree::Feeds, feed.id.as_str());
        b.delete(Tree::FeedTokens, feed.token_hash.as_str());
    }

    /// Feeds whose scope is exactly this staff/group/company id.
    pub fn feeds_targeting(&self, target: &str) -> DbResult<Vec<Feed>> {
        let all: Vec<Feed> = self.scan_json(Tree::Feeds, b"")?;
        Ok(all.into_iter().filter(|f| f.target == target).collect())
    }

    pub fn feeds_of_company(
        &self,
        company: &crate::model::CompanyId,
        scope: Option<FeedScopeKind>,
    ) -> DbResult<Vec<Feed>> {
        let all: Vec<Feed> = self.scan_json(Tree::Feeds, b"")?;
        Ok(all
            .into_iter()
            .filter(|f| &f.company == company && scope.is_none_or(|s| s == f.scope))
            .collect())
    }
}
