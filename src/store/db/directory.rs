//! Companies, groups, staff, app passwords and calendars.

use super::{decode, encode, key, prefix, Db, DbError, DbResult};
use crate::model::{
    now, AppPassword, AppPasswordId, Calendar, CalendarId, CalendarSource, Company, CompanyId,
    Direction, Group, GroupId, Staff, StaffId,
};
use crate::store::{keys, Batch, Tree};

/// What `update_staff` may change.
#[derive(Debug, Default, Clone)]
pub struct StaffChange {
    pub name: Option<String>,
    pub email: Option<String>,
    pub timezone: Option<String>,
    pub groups: Option<Vec<GroupId>>,
}

impl Db {
    // ---- companies ----

    pub fn create_company(&self, name: &str, timezone: &str) -> DbResult<Company> {
        let c = Company {
            id: CompanyId::generate(),
            name: name.to_string(),
            timezone: timezone.to_string(),
            created: now(),
        };
        let mut b = Batch::new();
        b.put(Tree::Companies, c.id.as_str(), encode(&c));
        self.store.commit(b)?;
        Ok(c)
    }

    pub fn company(&self, id: &CompanyId) -> DbResult<Option<Company>> {
        self.get_json(Tree::Companies, id.as_str().as_bytes())
    }

    pub fn companies(&self) -> DbResult<Vec<Company>> {
        self.scan_json(Tree::Companies, b"")
    }

    // ---- groups ----

    pub fn create_group(&self, company: &CompanyId, name: &str) -> DbResult<Group> {
        let g = Group {
            id: GroupId::generate(),
            company: company.clone(),
            name: name.to_string(),
            created: now(),
        };
        let mut b = Batch::new();
        b.expect(
            Tree::Companies,
            company.as_str(),
            self.store
                .get(Tree::Companies, company.as_str().as_bytes())?,
        );
        b.put(Tree::Groups, g.id.as_str(), encode(&g));
        b.put(
            Tree::Membership,
            key(&[company.as_str().as_bytes(), b"g", g.id.as_str().as_bytes()]),
            Vec::new(),
        );
        self.store.commit(b)?;
        Ok(g)
    }

    pub fn group(&self, id: &GroupId) -> DbResult<Option<Group>> {
        self.get_json(Tree::Groups, id.as_str().as_bytes())
    }

    pub fn groups_of_company(&self, company: &CompanyId) -> DbResult<Vec<Group>> {
        let p = key(&[company.as_str().as_bytes(), b"g", b""]);
        let mut out = Vec::new();
        for id in self.scan_index(Tree::Membership, &p)? {
            if let Some(g) = self.group(&GroupId(id))? {
                out.push(g);
            }
        }
        Ok(out)
    }

    pub fn group_members(&self, group: &GroupId) -> DbResult<Vec<StaffId>> {
        Ok(self
            .scan_index(Tree::Membership, &prefix(group.as_str().as_bytes()))?
            .into_iter()
            .map(StaffId)
            .collect())
    }

    // ---- staff ----

    /// Create a staff member with their native `appointments` calendar.
    pub fn create_staff(
        &self,
        company: &CompanyId,
        name: &str,
        email: &str,
        timezone: &str,
        groups: &[GroupId],
    ) -> DbResult<(Staff, Calendar)> {
        let email = email.to_ascii_lowercase();
        if self
            .staff_by_email(&email)?
            .iter()
            .any(|s| &s.company == company)
        {
            return Err(DbError::Duplicate(format!(
                "a staff member with email {email} already exists in this company"
            )));
        }
        let s = Staff {
            id: StaffId::generate(),
            company: company.clone(),
            name: name.to_string(),
            email: email.clone(),
            timezone: timezone.to_string(),
            groups: dedup(groups),
            created: now(),
        };
        let cal = Calendar {
            id: CalendarId::generate(),
            company: company.clone(),
            staff: s.id.clone(),
            slug: "appointments".into(),
            name: "Appointments".into(),
            color: Some("#2E7D32".into()),
            description: Some(format!("{}'s appointments", s.name)),
            order: Some(0),
            source: CalendarSource::Native,
            direction: Direction::Bidirectional,
            primary: false,
            conflicts: true,
            timezone: Some(s.timezone.clone()),
            created: s.created,
            components: None,
        };
        let mut b = Batch::new();
        b.expect(
            Tree::Companies,
            company.as_str(),
            self.store
                .get(Tree::Companies, company.as_str().as_bytes())?,
        );
        for g in &s.groups {
            // The groups must still exist when the staff member joins them.
            b.expect(
                Tree::Groups,
                g.as_str(),
                self.store.get(Tree::Groups, g.as_str().as_bytes())?,
            );
        }
        b.put(Tree::Staff, s.id.as_str(), encode(&s));
        b.put(
            Tree::StaffEmail,
            key(&[email.as_bytes(), s.id.as_str().as_bytes()]),
            Vec::new(),
        );
        self.index_membership(&mut b, &s, true);
        self.calendar_rows(&mut b, &cal);
        b.put(Tree::CalSeq, cal.id.as_str(), keys::seq(0).to_vec());
        self.store.commit(b)?;
        Ok((s, cal))
    }

    fn index_membership(&self, b: &mut Batch, s: &Staff, add: bool) {
        let mut rows = vec![key(&[
            s.company.as_str().as_bytes(),
            b"s",
            s.id.as_str().as_bytes(),
        ])];
        for g in &s.groups {
            rows.push(key(&[g.as_str().as_bytes(), s.id.as_str().as_bytes()]));
        }
        for r in rows {
            if add {
                b.put(Tree::Membership, r, Vec::new());
            } else {
                b.delete(Tree::Membership, r);
            }
        }
    }

    pub fn staff(&self, id: &StaffId) -> DbResult<Option<Staff>> {
        self.get_json(Tree::Staff, id.as_str().as_bytes())
    }

    pub fn staff_by_email(&self, email: &str) -> DbResult<Vec<Staff>> {
        let p = prefix(email.to_ascii_lowercase().as_bytes());
        let mut out = Vec::new();
        for id in self.scan_index(Tree::StaffEmail, &p)? {
            if let Some(s) = self.staff(&StaffId(id))? {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub fn staff_of_company(&self, company: &CompanyId) -> DbResult<Vec<Staff>> {
        let p = key(&[company.as_str().as_bytes(), b"s", b""]);
        let mut out = Vec::new();
        for id in self.scan_index(Tree::Membership, &p)? {
            if let Some(s) = self.staff(&StaffId(id))? {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub fn update_staff(&self, id: &StaffId, change: StaffChange) -> DbResult<Staff> {
        let raw = self
            .store
            .get(Tree::Staff, id.as_str().as_bytes())?
            .ok_or(DbError::NotFound)?;
        let old: Staff = decode(Tree::Staff, &raw)?;
        let mut s = old.clone();
        if let Some(n) = change.name {
            s.name = n;
        }
        if let Some(tz) = change.timezone {
            s.timezone = tz;
        }
        if let Some(e) = change.email {
            let e = e.to_ascii_lowercase();
            if e != s.email
                && self
                    .staff_by_email(&e)?
                    .iter()
                    .any(|o| o.company == s.company && o.id != s.id)
            {
                return Err(DbError::Duplicate(format!(
                    "a staff member with email {e} already exists in this company"
                )));
            }
            s.email = e;
        }
        if let Some(g) = change.groups {
            s.groups = dedup(&g);
        }
        let mut b = Batch::new();
        b.expect(Tree::Staff, id.as_str(), Some(raw));
        for g in &s.groups {
            b.expect(
                Tree::Groups,
                g.as_str(),
                self.store.get(Tree::Groups, g.as_str().as_bytes())?,
            );
        }
        self.index_membership(&mut b, &old, false);
        self.index_membership(&mut b, &s, true);
        if old.email != s.email {
            b.delete(
                Tree::StaffEmail,
                key(&[old.email.as_bytes(), id.as_str().as_bytes()]),
            );
            b.put(
                Tree::StaffEmail,
                key(&[s.email.as_bytes(), id.as_str().as_bytes()]),
                Vec::new(),
            );
        }
        b.put(Tree::Staff, id.as_str(), encode(&s));
        self.store.commit(b)?;
        Ok(s)
    }

    /// Remove a staff member with their calendars, events, app passwords and
    /// the feeds that cover only them.
    pub fn delete_staff(&self, id: &StaffId) -> DbResult<Staff> {
        let raw = self
            .store
            .get(Tree::Staff, id.as_str().as_bytes())?
            .ok_or(DbError::NotFound)?;
        let s: Staff = decode(Tree::Staff, &raw)?;
        let mut b = Batch::new();
        b.expect(Tree::Staff, id.as_str(), Some(raw));
        b.delete(Tree::Staff, id.as_str());
        b.delete(
            Tree::StaffEmail,
            key(&[s.email.as_bytes(), id.as_str().as_bytes()]),
        );
        self.index_membership(&mut b, &s, false);
        for cal in self.calendars_of_staff(id)? {
            self.calendar_removal(&mut b, &cal)?;
        }
        for a in self.accounts_of_staff(id)? {
            self.account_removal(&mut b, &a)?;
        }
        for ap in self.app_passwords(id)? {
            b.delete(
                Tree::AppPasswords,
                key(&[id.as_str().as_bytes(), ap.id.as_str().as_bytes()]),
            );
        }
        for feed in self.feeds_targeting(id.as_str())? {
            self.feed_removal(&mut b, &feed);
        }
        self.store.commit(b)?;
        Ok(s)
    }

    // ---- app passwords ----

    pub fn create_app_password(&self, ap: &AppPassword) -> DbResult<()> {
        let mut b = Batch::new();
        b.expect(
            Tree::Staff,
            ap.staff.as_str(),
            self.store.get(Tree::Staff, ap.staff.as_str().as_bytes())?,
        );
        b.put(
            Tree::AppPasswords,
            key(&[ap.staff.as_str().as_bytes(), ap.id.as_str().as_bytes()]),
            encode(ap),
        );
        Ok(self.store.commit(b)?)
    }

    pub fn app_passwords(&self, staff: &StaffId) -> DbResult<Vec<AppPassword>> {
        self.scan_json(Tree::AppPasswords, &prefix(staff.as_str().as_bytes()))
    }

    pub fn delete_app_password(&self, staff: &StaffId, id: &AppPasswordId) -> DbResult<()> {
        let k = key(&[staff.as_str().as_bytes(), id.as_str().as_bytes()]);
        if self.store.get(Tree::AppPasswords, &k)?.is_none() {
            return Err(DbError::NotFound);
        }
        let mut b = Batch::new();
        b.delete(Tree::AppPasswords, k);
        Ok(self.store.commit(b)?)
    }

    // ---- calendars ----

    pub(super) fn calendar_rows(&self, b: &mut Batch, cal: &Calendar) {
        b.put(Tree::Calendars, cal.id.as_str(), encode(cal));
        b.put(
            Tree::StaffCalendars,
            key(&[cal.staff.as_str().as_bytes(), cal.id.as_str().as_bytes()]),
            Vec::new(),
        );
        b.put(
            Tree::StaffCalendarSlugs,
            key(&[cal.staff.as_str().as_bytes(), cal.slug.as_bytes()]),
            cal.id.as_str().as_bytes().to_vec(),
        );
    }

    /// Add a calendar (a further native one, or a mirrored one).
    pub fn create_calendar(&self, cal: &Calendar) -> DbResult<()> {
        if self.calendar_by_slug(&cal.staff, &cal.slug)?.is_some() {
            return Err(DbError::Duplicate(format!(
                "a calendar named {} already exists",
                cal.slug
            )));
        }
        let mut b = Batch::new();
        b.expect(
            Tree::Staff,
            cal.staff.as_str(),
            self.store.get(Tree::Staff, cal.staff.as_str().as_bytes())?,
        );
        b.expect(Tree::Calendars, cal.id.as_str(), None);
        // Two creations of one name at once: only one commits.
        b.expect(
            Tree::StaffCalendarSlugs,
            key(&[cal.staff.as_str().as_bytes(), cal.slug.as_bytes()]),
            None,
        );
        self.calendar_rows(&mut b, cal);
        b.put(Tree::CalSeq, cal.id.as_str(), keys::seq(0).to_vec());
        Ok(self.store.commit(b)?)
    }

    /// Replace a calendar's properties (name, color, direction, roles…).
    pub fn update_calendar(&self, cal: &Calendar) -> DbResult<()> {
        let raw = self
            .store
            .get(Tree::Calendars, cal.id.as_str().as_bytes())?
            .ok_or(DbError::NotFound)?;
        let mut b = Batch::new();
        b.expect(Tree::Calendars, cal.id.as_str(), Some(raw));
        b.put(Tree::Calendars, cal.id.as_str(), encode(cal));
        Ok(self.store.commit(b)?)
    }

    pub fn calendar(&self, id: &CalendarId) -> DbResult<Option<Calendar>> {
        self.get_json(Tree::Calendars, id.as_str().as_bytes())
    }

    pub fn calendars_of_staff(&self, staff: &StaffId) -> DbResult<Vec<Calendar>> {
        let mut out = Vec::new();
        for id in self.scan_index(Tree::StaffCalendars, &prefix(staff.as_str().as_bytes()))? {
            if let Some(c) = self.calendar(&CalendarId(id))? {
                out.push(c);
            }
        }
        out.sort_by(|a, b| {
            (a.order.unwrap_or(i64::MAX), &a.slug).cmp(&(b.order.unwrap_or(i64::MAX), &b.slug))
        });
        Ok(out)
    }

    /// One lookup in the slug index, whatever the number of calendars.
    pub fn calendar_by_slug(&self, staff: &StaffId, slug: &str) -> DbResult<Option<Calendar>> {
        let k = key(&[staff.as_str().as_bytes(), slug.as_bytes()]);
        let Some(id) = self.store.get(Tree::StaffCalendarSlugs, &k)? else {
            return Ok(None);
        };
        let id = CalendarId(String::from_utf8_lossy(&id).into_owned());
        Ok(self
            .calendar(&id)?
            .filter(|c| c.staff == *staff && c.slug == slug))
    }

    /// The staff member's native `appointments` calendar.
    pub fn appointments_calendar(&self, staff: &StaffId) -> DbResult<Calendar> {
        self.calendar_by_slug(staff, "appointments")?
            .ok_or(DbError::NotFound)
    }

    /// Delete a calendar and everything in it.
    pub fn delete_calendar(&self, id: &CalendarId) -> DbResult<()> {
        let cal = self.calendar(id)?.ok_or(DbError::NotFound)?;
        let _g = self.lock(id.as_str());
        let mut b = Batch::new();
        self.calendar_removal(&mut b, &cal)?;
        Ok(self.store.commit(b)?)
    }

    pub(super) fn calendar_removal(&self, b: &mut Batch, cal: &Calendar) -> DbResult<()> {
        let id = cal.id.as_str().as_bytes();
        b.delete(Tree::Calendars, id);
        b.delete(
            Tree::StaffCalendars,
            key(&[cal.staff.as_str().as_bytes(), id]),
        );
        b.delete(
            Tree::StaffCalendarSlugs,
            key(&[cal.staff.as_str().as_bytes(), cal.slug.as_bytes()]),
        );
        b.delete(Tree::CalSeq, id);
        b.delete(Tree::SyncState, id);
        let p = prefix(id);
        for meta in self.events_of_calendar(&cal.id)? {
            b.delete(Tree::EventIds, meta.id.as_str());
        }
        for tree in [
            Tree::Events,
            Tree::Bodies,
            Tree::EventUids,
            Tree::EventTimes,
            Tree::EventLong,
            Tree::Changes,
            Tree::Tombstones,
            Tree::RemoteIds,
            Tree::RemoteItems,
        ] {
            for r in self.store.scan_prefix(tree, &p) {
                let (k, _) = r?;
                b.delete(tree, k);
            }
        }
        Ok(())
    }
}

fn dedup<T: Clone + Ord>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}
