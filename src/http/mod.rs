//! The HTTP server: router, authentication and the handlers of the admin
//! API, feeds, CalDAV and the OAuth callbacks. Only this module knows about
//! hyper and axum.
