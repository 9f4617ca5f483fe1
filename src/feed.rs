//! ICS feeds: rendering a scope's events into one RFC 5545 calendar (pure)
//! and caching the rendered bytes.
