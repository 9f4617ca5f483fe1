//! An appointment as the admin API sees it, and its iCalendar form.
