//! WebDAV (RFC 4918) and CalDAV (RFC 4791, RFC 6578) protocol: request
//! bodies parse into typed values, responses are written from typed values.
//! No I/O, no store, no hyper.
