//! The upstream sync loop: scheduler, incremental pull, outbox push and the
//! conflict policy.
