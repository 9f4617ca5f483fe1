//! Connections stay usable after an answer that did not need the request
//! body (a redirect, a 401 challenge): clients reuse them at once, and a
//! connection closed under them shows as "remote end closed connection
//! without response" (python-caldav, Apple Calendar).

use crate::common;

use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROPFIND: &str = "<?xml version=\"1.0\"?><propfind xmlns=\"DAV:\"><prop><current-user-principal/></prop></propfind>";

/// Reads one HTTP/1.1 response (headers and a Content-Length body).
async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                    .await
                    .ok()?
                    .ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let status = head.split_whitespace().nth(1)?.parse().ok()?;
            return Some((status, head));
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn send_split(stream: &mut TcpStream, method: &str, path: &str, body: &str, extra: &str) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/xml\r\nDepth: 0\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    // The body arrives after the server has seen the headers, as it does
    // from a client that writes them separately or over a slow link.
    tokio::time::sleep(Duration::from_millis(60)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
}

#[tokio::test]
async fn a_redirect_and_a_challenge_leave_the_connection_reusable() {
    let s = TestServer::start().await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();

    // 1. PROPFIND on the well-known URI: a redirect that ignores the body.
    send_split(&mut stream, "PROPFIND", "/.well-known/caldav", PROPFIND, "").await;
    let (status, head) = read_response(&mut stream)
        .await
        .expect("an answer to the first request");
    assert!((300..400).contains(&status), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );

    // 2. The same connection: PROPFIND without credentials → 401.
    send_split(&mut stream, "PROPFIND", "/dav/", PROPFIND, "").await;
    let (status, head) = read_response(&mut stream)
        .await
        .expect("the connection was closed after the redirect");
    assert_eq!(status, 401, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("www-authenticate"),
        "{head}"
    );

    // 3. And once more: the connection survived the challenge too.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (status, head) = read_response(&mut stream)
        .await
        .expect("the connection was closed after the 401");
    assert_eq!(status, 200, "{head}");
}

#[tokio::test]
async fn a_large_unread_body_closes_the_connection_openly() {
    let s = TestServer::start().await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    // 5 MiB declared, nothing sent: the server answers 401 without waiting
    // for it and says it will close the connection.
    stream
        .write_all(b"PUT /dav/calendars/x/appointments/a.ics HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/calendar\r\nContent-Length: 5242880\r\n\r\nBEGIN:VCALENDAR\r\n")
        .await
        .unwrap();
    let (status, head) = read_response(&mut stream).await.expect("an answer");
    assert_eq!(status, 401, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
}

#[tokio::test]
async fn header_names_go_out_in_title_case() {
    let s = TestServer::start().await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    send_split(&mut stream, "PROPFIND", "/dav/", PROPFIND, "").await;
    let (status, head) = read_response(&mut stream).await.expect("an answer");
    assert_eq!(status, 401, "{head}");
    // Proxies and older clients that match header names byte for byte
    // (python-caldav's proxy test rewrites "\r\nContent-Type: ") see the
    // usual spelling.
    assert!(head.contains("\r\nContent-Type: "), "{head}");
    assert!(head.contains("\r\nContent-Length: "), "{head}");
    assert!(!head.contains("\r\ncontent-"), "{head}");
}
