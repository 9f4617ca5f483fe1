//! Backup and restore end to end: an online backup of a live server,
//! restored into a new directory, serves the same data (feeds keep their
//! URLs, appointments their ids, app passwords still work).

use crate::common;

use common::{get, TestServer, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_restores_to_an_identical_server() {
    let t = TestServer::start().await;
    let (cid, sid) = t.company_with_staff("Europe/Berlin").await;
    for i in 0..20 {
        t.create(
            &format!("/api/v1/staff/{sid}/appointments"),
            json!({"summary": format!("A{i}"), "start": format!("2031-01-{:02}T09:00:00Z", i + 1), "end": format!("2031-01-{:02}T10:00:00Z", i + 1)}),
        )
        .await;
    }
    let feed = t
        .create("/api/v1/feeds", json!({"scope": "company", "id": cid}))
        .await;
    let url = feed["url"].as_str().unwrap().to_string();
    let (_, _, before) = get(&t.client, &url, &[]).await;

    // Writes keep going while the backup is taken.
    let writer = {
        let client = t.client.clone();
        let base = t.base.clone();
        let sid = sid.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let _ = client
                    .post(format!("{base}/api/v1/staff/{sid}/appointments"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"summary": format!("during {i}"), "start": "2031-02-01T09:00:00Z", "end": "2031-02-01T10:00:00Z"}))
                    .send()
                    .await;
            }
        })
    };
    let r = t
        .client
        .get(t.url("/api/v1/backup"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let backup = r.bytes().await.unwrap();
    writer.await.unwrap();
    // Without the admin token: refused.
    let r = t.client.get(t.url("/api/v1/backup")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Restore into a new directory and serve it.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = calbridge::store::SledStore::open(dir.path(), 8 << 20).unwrap();
        let stats = calbridge::backup::restore(&store, backup.as_ref()).unwrap();
        assert!(stats.records > 100);
    }
    // The restored server must use the same secret key (OAuth tokens).
    std::fs::copy(
        t.dir.path().join("secret.key"),
        dir.path().join("secret.key"),
    )
    .ok();
    let restored = TestServer::start_in(dir, |_| {}).await;
    let (_, list) = restored
        .api("GET", &format!("/api/v1/staff/{sid}/appointments"), None)
        .await;
    let n = list.as_array().unwrap().len();
    assert!((20..=40).contains(&n), "{n}");
    // The snapshot is consistent: the appointments listed are exactly the
    // events the calendar's change log knows.
    let cal = restored
        .app
        .db
        .appointments_calendar(&calbridge::model::StaffId(sid.clone()))
        .unwrap();
    let (_, changes) = restored.app.db.changes_since(&cal.id, 0).unwrap().unwrap();
    assert_eq!(changes.len(), n);
    // The same feed URL works on the restored server (same token hash).
    let restored_url = url.replace(&t.base, &restored.base);
    let (s, _, after) = get(&restored.client, &restored_url, &[]).await;
    assert_eq!(s, StatusCode::OK);
    if n == 20 {
        assert_eq!(after, before);
    }
    let (_, company) = restored
        .api("GET", &format!("/api/v1/companies/{cid}"), None)
        .await;
    assert_eq!(company["name"], "Acme");
}
