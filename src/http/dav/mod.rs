//! The CalDAV endpoint: HTTP handlers under `/dav/` (RFC 4918, RFC 4791,
//! RFC 6578, RFC 5397, RFC 3744 read side, RFC 6764 discovery) over the
//! store, for Apple Calendar, Thunderbird, DAVx5 and python `caldav`.
//!
//! # Layout
//! - this file: the router, HTTP Basic authentication, path resolution to
//!   a [`Target`] and method dispatch, and turning [`DavError`] into a
//!   response;
//! - [`path`]: the URL layout and the "only your own home" rule (pure);
//! - [`props`]: the live properties of every resource (pure);
//! - [`engine`]: the calls into the iCalendar engine (validation,
//!   recurrence-aware time ranges, expand, busy time);
//! - [`propfind`]: PROPFIND and PROPPATCH;
//! - [`object`]: GET, HEAD, PUT, DELETE, COPY and MOVE of calendar
//!   objects;
//! - [`collection`]: MKCALENDAR, extended MKCOL and DELETE of calendars;
//! - [`report`]: calendar-query, calendar-multiget, sync-collection,
//!   free-busy-query, expand-property and the principal searches.
//!
//! # Invariants
//! - Every request but OPTIONS is authenticated first; a path naming
//!   another staff member's home is a 404 indistinguishable from a path
//!   that does not exist.
//! - Request bodies are read with `server.dav_max_body` as the limit and
//!   go through [`crate::dav`]'s safe XML reader; nothing is stored when a
//!   request fails.
//! - Writes go through the store's atomic, flushed batches on the blocking
//!   pool; conditional writes pin the etag they checked, so a concurrent
//!   change between check and write is a 412, never a lost update.
//! - PROPFIND, sync-collection and calendar-query answer from the stored
//!   metadata (etags, spans) and read or parse object bodies only when a
//!   property or a filter needs them.

pub mod collection;
pub mod engine;
pub mod object;
pub mod path;
pub mod propfind;
pub mod props;
pub mod report;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use bytes::Bytes;

use super::body::{read_limited, BodyError};
use super::App;
use crate::dav::{Condition, DavError};
use crate::model::{Calendar, Staff};
use crate::store::db::{DbError, DbResult};
use crate::store::{Db, StoreError};
use path::{PathError, Place};
use props::Viewer;

/// The `DAV` header of OPTIONS: WebDAV class 1 and 3, CalDAV, RFC 5689.
pub const DAV_CLASSES: &str = "1, 3, calendar-access, extended-mkcol";

/// The methods served under `/dav/`.
pub const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, REPORT, MKCALENDAR, MKCOL, COPY, MOVE";

/// The CalDAV routes: `/.well-known/caldav` and everything under `/dav`.
pub fn router() -> Router<App> {
    Router::new()
        .route("/", any(server_root))
        .route("/.well-known/caldav", any(well_known))
        .route("/.well-known/caldav/", any(well_known))
        .route("/dav", any(handle))
        .route("/dav/", any(handle))
        .route("/dav/{*rest}", any(handle))
}

/// RFC 6764 §5: the well-known URI redirects to the context path.
async fn well_known(State(app): State<App>) -> Response {
    let location = format!("{}/dav/", path::public_prefix(&app.config.public_url));
    Response::builder()
        .status(StatusCode::MOVED_PERMANENTLY)
        .header(header::LOCATION, location)
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .expect("static response")
}

/// The server root: clients given only the host (python-caldav, DAVx5 and
/// Thunderbird with a bare `https://host/`) PROPFIND it for the principal
/// before any well-known lookup. OPTIONS says it speaks CalDAV; PROPFIND
/// and REPORT are sent on to the context path like the well-known URI;
/// everything else is not found.
async fn server_root(State(app): State<App>, req: Request) -> Response {
    match req.method().as_str() {
        "OPTIONS" => Response::builder()
            .status(StatusCode::OK)
            .header("DAV", DAV_CLASSES)
            .header(header::ALLOW, "OPTIONS, PROPFIND")
            .header(header::CONTENT_LENGTH, "0")
            .body(Body::empty())
            .expect("static response"),
        "PROPFIND" | "REPORT" => well_known(State(app)).await,
        _ => crate::http::error::ApiError::not_found("path").into_response(),
    }
}

/// One authenticated request: the app, who is asking, and where hrefs
/// start.
pub struct Ctx {
    pub app: App,
    pub staff: Staff,
    pub prefix: String,
}

impl Ctx {
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            staff: &self.staff,
            prefix: &self.prefix,
            max_resource_size: self.app.config.dav_max_body,
        }
    }

    /// The store (reads are cheap and run on the async threads; writes go
    /// through [`Ctx::write`]).
    pub fn db(&self) -> &Db {
        &self.app.db
    }

    /// Runs a store write on the blocking pool (a commit waits for the
    /// flush).
    pub async fn write<T, F>(&self, f: F) -> DbResult<T>
    where
        F: FnOnce(&Db) -> DbResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.app.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .unwrap_or_else(|e| Err(StoreError::Backend(format!("write task failed: {e}")).into()))
    }

    /// The zone floating times of `cal` are read in.
    pub fn zone<'a>(&'a self, cal: &'a Calendar) -> &'a str {
        props::zone_of(cal, &self.staff)
    }
}

/// What a request path names once the store has been asked.
pub enum Target {
    Root,
    Principals,
    Calendars,
    Principal,
    Home,
    Calendar(Box<Calendar>),
    /// A calendar path where no calendar exists (MKCALENDAR creates one).
    NoCalendar {
        slug: String,
    },
    Object {
        cal: Box<Calendar>,
        name: String,
    },
}

/// A resolved request: the target and its decoded path (hrefs of members
/// extend it).
pub struct Resolved {
    pub target: Target,
    pub path: String,
}

impl Resolved {
    /// The path of the calendar an object belongs to.
    pub fn parent_path(&self) -> &str {
        match self.path.rfind('/') {
            Some(i) => &self.path[..=i],
            None => &self.path,
        }
    }
}

/// Resolves a decoded path (from the URI or from an href in a body).
pub fn resolve(ctx: &Ctx, located: path::Located) -> Result<Resolved, DavError> {
    let target = match located.place {
        Place::Root => Target::Root,
        Place::Principals => Target::Principals,
        Place::Principal => Target::Principal,
        Place::Calendars => Target::Calendars,
        Place::Home => Target::Home,
        Place::Calendar { slug } => match ctx.db().calendar_by_slug(&ctx.staff.id, &slug) {
            Ok(Some(cal)) => Target::Calendar(Box::new(cal)),
            Ok(None) => Target::NoCalendar { slug },
            Err(e) => return Err(db_error(e)),
        },
        Place::Object { slug, name } => match ctx.db().calendar_by_slug(&ctx.staff.id, &slug) {
            Ok(Some(cal)) => Target::Object {
                cal: Box::new(cal),
                name,
            },
            Ok(None) => return Err(not_found()),
            Err(e) => return Err(db_error(e)),
        },
    };
    Ok(Resolved {
        target,
        path: located.path,
    })
}

/// The plain 404 of everything that does not exist or is not yours.
pub fn not_found() -> DavError {
    DavError::new(404, "not found")
}

pub fn path_error(e: PathError) -> DavError {
    match e {
        PathError::NotFound => not_found(),
        PathError::Forbidden => DavError::new(
            403,
            "the path has a '.' or '..' segment, an encoded '/' or '\\', or bytes that are not UTF-8",
        ),
    }
}

/// A store failure as a DAV error; internals go to the log, not the body.
pub fn db_error(e: DbError) -> DavError {
    match e {
        DbError::NotFound => not_found(),
        DbError::PreconditionFailed => precondition_failed(),
        DbError::UidConflict { uid, href } => DavError::condition(
            Condition::NoUidConflict { href },
            format!("UID {uid:?} is already used by another resource of this calendar"),
        ),
        DbError::Duplicate(m) => DavError::new(409, m),
        DbError::Store(e) => {
            tracing::error!(error = %e, "store failure in a CalDAV request");
            DavError::new(500, "internal error; see the server log")
        }
    }
}

pub fn precondition_failed() -> DavError {
    DavError::new(
        412,
        "the resource changed: its ETag does not match If-Match / If-None-Match",
    )
}

/// The response for a DAV error: the `<D:error>` body when it names a
/// condition, the message as text otherwise.
pub fn error_response(e: DavError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (ct, body) = match e.to_xml() {
        Some(xml) => ("application/xml; charset=utf-8", xml),
        None => ("text/plain; charset=utf-8", format!("{}\n", e.message)),
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    }
    r
}

/// A 207 Multi-Status response.
pub fn multistatus(body: Vec<u8>, minimal: bool) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::MULTI_STATUS;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    if minimal {
        h.insert(
            "preference-applied",
            HeaderValue::from_static("return=minimal"),
        );
    }
    r
}

/// A header's value as text (repeated headers joined with ", ").
pub fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let parts: Vec<&str> = values.map(|v| v.to_str().unwrap_or("\u{fffd}")).collect();
    Some(parts.join(", "))
}

/// The request body, at most `server.dav_max_body` bytes.
pub async fn body(ctx: &Ctx, req: Request) -> Result<Bytes, DavError> {
    read_limited(req, ctx.app.config.dav_max_body)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(limit) => DavError::condition(
                Condition::MaxResourceSize,
                format!("the request body is larger than the limit of {limit} bytes"),
            )
            .with_status(413),
            BodyError::Read(m) => DavError::bad_request(format!("could not read the body: {m}")),
            BodyError::Encoded(enc) => DavError::new(
                415,
                format!("request bodies with Content-Encoding {enc:?} are not accepted"),
            ),
        })
}

fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "authentication required: your e-mail address and an app password\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"calbridge\""),
    );
    r
}

fn options() -> Response {
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert("dav", HeaderValue::from_static(DAV_CLASSES));
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// Every request under `/dav`.
async fn handle(State(app): State<App>, req: Request) -> Response {
    if req.method() == Method::OPTIONS {
        return options();
    }
    let Some(staff) = authenticate(&app, req.headers()).await else {
        return unauthorized();
    };
    let ctx = Ctx {
        prefix: path::public_prefix(&app.config.public_url),
        app,
        staff,
    };
    match dispatch(&ctx, req).await {
        Ok(r) => r,
        Err(e) => error_response(e),
    }
}

async fn authenticate(app: &App, headers: &HeaderMap) -> Option<Staff> {
    let (user, pass) = super::auth::basic_credentials(headers)?;
    let id = super::auth::verify_basic(app, &user, &pass).await?;
    app.db.staff(&id).ok().flatten()
}

async fn dispatch(ctx: &Ctx, req: Request) -> Result<Response, DavError> {
    let located = path::from_uri(req.uri().path(), &ctx.prefix, &ctx.staff).map_err(path_error)?;
    let resolved = resolve(ctx, located)?;
    let method = req.method().as_str().to_string();
    match method.as_str() {
        "PROPFIND" => propfind::propfind(ctx, &resolved, req).await,
        "PROPPATCH" => propfind::proppatch(ctx, &resolved, req).await,
        "REPORT" => report::report(ctx, &resolved, req).await,
        "GET" | "HEAD" => object::get(ctx, &resolved, req).await,
        "PUT" => object::put(ctx, &resolved, req).await,
        "DELETE" => match &resolved.target {
            Target::Object { .. } => object::delete(ctx, &resolved, req).await,
            _ => collection::delete(ctx, &resolved).await,
        },
        "MKCALENDAR" => collection::make(ctx, &resolved, req, true).await,
        "MKCOL" => collection::make(ctx, &resolved, req, false).await,
        "COPY" => object::copy_or_move(ctx, &resolved, req, false).await,
        "MOVE" => object::copy_or_move(ctx, &resolved, req, true).await,
        _ => Err(DavError::new(
            405,
            format!("{method} is not supported here; allowed: {ALLOW}"),
        )),
    }
}
