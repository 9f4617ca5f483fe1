//! `calbridge demo`: the whole system on one machine with no credentials.
//! A sample company (two groups, five staff in five time zones, about 200
//! appointments: one-offs, recurring series, all-day and multi-day ones),
//! feeds of every scope, a CalDAV login, all printed on start.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::config::{Config, RawConfig};
use crate::crypto;
use crate::model::appointment::{self, NewAppointment, Visibility};
use crate::model::{
    AppPassword, AppPasswordId, EventId, Feed, FeedId, FeedScopeKind, Include, Privacy, Staff,
};
use crate::server::Server;
use crate::store::db::{DbResult, EventWrite, Precondition};
use crate::store::Db;
use crate::upstream::emulator::{Emulator, Provider};

/// What the demo created, for printing (and for tests).
pub struct Sample {
    pub company: String,
    /// (id, name, email, zone) of each staff member.
    pub staff: Vec<(String, String, String, String)>,
    pub feeds: Vec<(String, String)>,
    pub caldav_user: String,
    pub caldav_password: String,
    pub appointments: usize,
}

/// A tiny deterministic generator so every demo shows the same calendar.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const TITLES: &[&str] = &[
    "Initial assessment",
    "Follow-up session",
    "Sports massage",
    "Back pain consultation",
    "Knee rehab",
    "Posture check",
    "Shoulder mobility",
    "Video consultation",
];

fn add_appointment(db: &Db, staff: &Staff, input: NewAppointment) -> DbResult<()> {
    let times = appointment::parse_times(
        &input.start,
        &input.end,
        input.all_day.unwrap_or(false),
        input.timezone.as_deref(),
        &staff.timezone,
    )
    .expect("demo appointments are valid");
    let uid = format!("{}@calbridge", crypto::random_id(26));
    let body = appointment::to_ics(&input, &uid, &times, Utc::now()).expect("valid");
    let cal = db.appointments_calendar(&staff.id)?;
    let id = EventId::generate();
    let (start, end, recurring) =
        appointment::index_span(&body, &staff.timezone).expect("demo appointments analyse");
    db.put_event(
        EventWrite {
            calendar: cal.id,
            href: format!("{id}.ics"),
            uid,
            start,
            end,
            recurring,
            body,
            remote: None,
            id: Some(id),
            last_modified: None,
        },
        &Precondition::IfAbsent,
        |_, _| Ok(Default::default()),
    )?;
    Ok(())
}

fn feed(
    db: &Db,
    company: &crate::model::CompanyId,
    scope: FeedScopeKind,
    target: &str,
    privacy: Privacy,
) -> DbResult<String> {
    let token = crypto::random_token();
    db.create_feed(&Feed {
        id: FeedId::generate(),
        company: company.clone(),
        scope,
        target: target.to_string(),
        privacy,
        include: vec![Include::Appointments, Include::External],
        token_hash: crypto::token_hash(&token),
        created: crate::model::now(),
        generation: 0,
    })?;
    Ok(token)
}

/// Create the sample company in `db`; URLs are built on `public_url`.
pub fn seed(db: &Db, public_url: &str) -> DbResult<Sample> {
    let company = db.create_company("Northwind Physio", "Europe/Berlin")?;
    let berlin = db.create_group(&company.id, "Berlin clinic")?;
    let remote = db.create_group(&company.id, "Remote team")?;
    let people = [
        (
            "Anna Schmidt",
            "anna@northwind.example",
            "Europe/Berlin",
            vec![berlin.id.clone()],
        ),
        (
            "Ben Okafor",
            "ben@northwind.example",
            "Europe/London",
            vec![berlin.id.clone(), remote.id.clone()],
        ),
        (
            "Chloé Martin",
            "chloe@northwind.example",
            "America/New_York",
            vec![remote.id.clone()],
        ),
        (
            "Daichi Sato",
            "daichi@northwind.example",
            "Asia/Tokyo",
            vec![remote.id.clone()],
        ),
        (
            "Elena Ruiz",
            "elena@northwind.example",
            "America/Los_Angeles",
            vec![berlin.id.clone()],
        ),
    ];
    let mut staff = Vec::new();
    for (name, email, tz, groups) in people {
        staff.push(db.create_staff(&company.id, name, email, tz, &groups)?.0);
    }
    let mut rng = Lcg(20_261_121);
    let today = Utc::now().date_naive();
    let mut count = 0;
    for s in &staff {
        let zone: chrono_tz::Tz = s.timezone.parse().expect("demo zones are valid");
        let at = |d: NaiveDate, h: u32, m: u32| {
            zone.from_local_datetime(&d.and_hms_opt(h, m, 0).expect("valid time"))
                .earliest()
                .expect("not in a gap")
                .to_rfc3339()
        };
        let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
        let base = |summary: &str, start: String, end: String| NewAppointment {
            summary: summary.to_string(),
            start,
            end,
            timezone: Some(s.timezone.clone()),
            all_day: None,
            description: None,
            location: None,
            visibility: None,
            rrule: None,
        };
        // Two recurring series.
        add_appointment(
            db,
            s,
            NewAppointment {
                rrule: Some("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=24".into()),
                description: Some("Weekly team stand-up.\nBring your numbers.".into()),
                ..base(
                    "Team stand-up",
                    at(monday - Duration::days(14), 9, 0),
                    at(monday - Duration::days(14), 9, 15),
                )
            },
        )?;
        add_appointment(
            db,
            s,
            NewAppointment {
                rrule: Some("FREQ=MONTHLY;BYDAY=2TU".into()),
                location: Some("Room 2, Hauptstraße 5".into()),
                ..base(
                    "Monthly case review",
                    at(monday - Duration::days(30), 14, 0),
                    at(monday - Duration::days(30), 15, 0),
                )
            },
        )?;
        // All-day and multi-day.
        let d1 = today + Duration::days(3 + rng.next(20) as i64);
        add_appointment(
            db,
            s,
            NewAppointment {
                all_day: Some(true),
                timezone: None,
                ..base(
                    "Training day",
                    d1.to_string(),
                    (d1 + Duration::days(1)).to_string(),
                )
            },
        )?;
        let d2 = today + Duration::days(25 + rng.next(10) as i64);
        add_appointment(
            db,
            s,
            NewAppointment {
                all_day: Some(true),
                timezone: None,
                location: Some("Lisbon".into()),
                ..base(
                    "Physio congress",
                    d2.to_string(),
                    (d2 + Duration::days(3)).to_string(),
                )
            },
        )?;
        // A private one.
        let d3 = today + Duration::days(2);
        add_appointment(
            db,
            s,
            NewAppointment {
                visibility: Some(Visibility::Private),
                ..base("Doctor's appointment", at(d3, 8, 0), at(d3, 8, 45))
            },
        )?;
        count += 5;
        for _ in 0..35 {
            let mut day = today + Duration::days(rng.next(56) as i64 - 14);
            while day.weekday().num_days_from_monday() >= 5 {
                day += Duration::days(1);
            }
            let hour = 8 + rng.next(9) as u32;
            let minute = [0, 15, 30, 45][rng.next(4) as usize];
            let len = [30, 45, 60, 90][rng.next(4) as usize];
            let start = zone
                .from_local_datetime(&day.and_hms_opt(hour, minute, 0).expect("valid"))
                .earliest()
                .expect("not in a gap");
            let end = start + Duration::minutes(len);
            let title = TITLES[rng.next(TITLES.len() as u64) as usize];
            add_appointment(
                db,
                s,
                NewAppointment {
                    description: Some(format!("Booked online. Client #{}", 1000 + rng.next(9000))),
                    ..base(title, start.to_rfc3339(), end.to_rfc3339())
                },
            )?;
            count += 1;
        }
    }
    let url = |t: &str| format!("{public_url}/feeds/{t}.ics");
    let mut feeds = Vec::new();
    for s in &staff {
        feeds.push((
            format!("staff   {} (full)", s.name),
            url(&feed(
                db,
                &company.id,
                FeedScopeKind::Staff,
                s.id.as_str(),
                Privacy::Full,
            )?),
        ));
    }
    feeds.push((
        "group   Berlin clinic (full)".into(),
        url(&feed(
            db,
            &company.id,
            FeedScopeKind::Group,
            berlin.id.as_str(),
            Privacy::Full,
        )?),
    ));
    feeds.push((
        "group   Remote team (busy only)".into(),
        url(&feed(
            db,
            &company.id,
            FeedScopeKind::Group,
            remote.id.as_str(),
            Privacy::Busy,
        )?),
    ));
    feeds.push((
        "company Northwind Physio (busy only)".into(),
        url(&feed(
            db,
            &company.id,
            FeedScopeKind::Company,
            company.id.as_str(),
            Privacy::Busy,
        )?),
    ));
    let password = crypto::random_id(24);
    db.create_app_password(&AppPassword {
        id: AppPasswordId::generate(),
        staff: staff[0].id.clone(),
        label: Some("demo".into()),
        hash: crypto::hash_password(&password),
        created: crate::model::now(),
    })?;
    Ok(Sample {
        company: company.id.to_string(),
        staff: staff
            .iter()
            .map(|s| {
                (
                    s.id.to_string(),
                    s.name.clone(),
                    s.email.clone(),
                    s.timezone.clone(),
                )
            })
            .collect(),
        feeds,
        caldav_user: staff[0].email.clone(),
        caldav_password: password,
        appointments: count,
    })
}

async fn bind(listen: Option<String>) -> anyhow::Result<tokio::net::TcpListener> {
    if let Some(l) = listen {
        let addr: SocketAddr = l
            .parse()
            .map_err(|_| anyhow::anyhow!("--listen: not an address: {l:?}"))?;
        return Ok(tokio::net::TcpListener::bind(addr).await?);
    }
    for port in 8080..8180 {
        if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            return Ok(l);
        }
    }
    Ok(tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?)
}

/// Upstream calendars for the demo's connected accounts: a few events in
/// each, among them a weekly series with an exception.
fn seed_upstream(
    emu: &Emulator,
    provider: Provider,
    email: &str,
    zone: &str,
) -> anyhow::Result<()> {
    let today = Utc::now().date_naive();
    let day = |n: i64| (today + Duration::days(n)).format("%Y-%m-%d").to_string();
    match provider {
        Provider::Google => {
            emu.create_user(Provider::Google, email, None, Some(zone));
            let ev = |summary: &str, d: i64, h: u32, extra: serde_json::Value| {
                let mut v = serde_json::json!({
                    "summary": summary,
                    "start": {"dateTime": format!("{}T{h:02}:00:00", day(d)), "timeZone": zone},
                    "end": {"dateTime": format!("{}T{:02}:00:00", day(d), h + 1), "timeZone": zone},
                });
                for (k, x) in extra.as_object().cloned().unwrap_or_default() {
                    v[k] = x;
                }
                emu.seed_google_event(email, "primary", v)
            };
            ev(
                "Dentist",
                3,
                8,
                serde_json::json!({"visibility": "private"}),
            )?;
            ev(
                "Lunch with Sam",
                1,
                12,
                serde_json::json!({"location": "Café Central"}),
            )?;
            ev(
                "Yoga",
                -2,
                18,
                serde_json::json!({"recurrence": ["RRULE:FREQ=WEEKLY;COUNT=10"], "colorId": "2"}),
            )?;
            emu.seed_google_event(
                email,
                "primary",
                serde_json::json!({"summary": "Vacation", "start": {"date": day(20)}, "end": {"date": day(27)}, "transparency": "opaque"}),
            )?;
        }
        Provider::Microsoft => {
            emu.create_user(Provider::Microsoft, email, None, Some(zone));
            let win = crate::ics::tz::iana_to_windows(zone).unwrap_or("UTC");
            let ev = |subject: &str, d: i64, h: u32, extra: serde_json::Value| {
                let mut v = serde_json::json!({
                    "subject": subject,
                    "start": {"dateTime": format!("{}T{h:02}:00:00", day(d)), "timeZone": win},
                    "end": {"dateTime": format!("{}T{:02}:30:00", day(d), h), "timeZone": win},
                });
                for (k, x) in extra.as_object().cloned().unwrap_or_default() {
                    v[k] = x;
                }
                emu.seed_graph_event(email, "default", v)
            };
            ev("1:1 with manager", 2, 10, serde_json::json!({}))?;
            ev(
                "Quarterly planning",
                5,
                14,
                serde_json::json!({"sensitivity": "private"}),
            )?;
            ev(
                "Team standup",
                -3,
                9,
                serde_json::json!({"recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday", "friday"]},
                    "range": {"type": "numbered", "startDate": day(-3), "numberOfOccurrences": 30}
                }}),
            )?;
        }
    }
    Ok(())
}

/// Connect an account through the real flow (authorization URL → the
/// emulator's consent → callback) and select its default calendar.
async fn connect_account(
    base: &str,
    token: &str,
    staff: &str,
    provider: &str,
    write_back: bool,
) -> anyhow::Result<String> {
    let client = crate::upstream::http::build_client(std::time::Duration::from_secs(30));
    let api = |path: &str| format!("{base}/api/v1{path}");
    let v: serde_json::Value = client
        .post(api(&format!("/staff/{staff}/accounts")))
        .bearer_auth(token)
        .json(&serde_json::json!({"provider": provider}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let account = v["id"].as_str().unwrap_or_default().to_string();
    let consent = client
        .get(v["authorization_url"].as_str().unwrap_or_default())
        .send()
        .await?;
    let callback = consent
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("the emulator did not redirect"))?
        .to_string();
    client.get(&callback).send().await?.error_for_status()?;
    let cals: serde_json::Value = client
        .get(api(&format!("/accounts/{account}/calendars")))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if let Some(c) = cals
        .as_array()
        .and_then(|l| l.iter().find(|c| c["default"] == true))
    {
        let id = percent_encoding::utf8_percent_encode(
            c["id"].as_str().unwrap_or_default(),
            percent_encoding::NON_ALPHANUMERIC,
        );
        client
            .put(api(&format!("/accounts/{account}/calendars/{id}")))
            .bearer_auth(token)
            .json(&if write_back {
                serde_json::json!({"selected": true, "direction": "bidirectional", "primary": true, "conflicts": true})
            } else {
                serde_json::json!({"selected": true, "direction": "read_only", "conflicts": true})
            })
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(account)
}

/// Run the demo until `shutdown` resolves. Its data lives in a temporary
/// directory removed on exit.
pub async fn run(
    listen: Option<String>,
    state_file: Option<std::path::PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = bind(listen).await?;
    let addr = listener.local_addr()?;
    // Google Calendar and Microsoft Graph, emulated in this process.
    let emu = Emulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?).await;
    let dir = std::env::temp_dir().join(format!("calbridge-demo-{}", crypto::random_id(8)));
    let mut raw = RawConfig::default();
    raw.set("server.listen", addr.to_string());
    raw.set("store.path", dir.display().to_string());
    raw.set("sync.interval", "1m".into());
    raw.set("security.secret_key", crypto::random_token());
    for (key, value) in crate::upstream::emulator::client_settings(&emu.base_url) {
        raw.set(key, value);
    }
    let config: Config = raw.validate()?;
    let config = Arc::new(config);
    let server = Server::open(config.clone())?;
    let token = server
        .generated_admin_token()
        .map(str::to_string)
        .unwrap_or_default();
    let db = server.app.db.clone();
    let public = config.public_url.clone();
    let sample = tokio::task::spawn_blocking(move || seed(&db, &public)).await??;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    // Two staff members with Google, two with Microsoft.
    let mut accounts = Vec::new();
    for (i, (id, name, email, zone)) in sample.staff.iter().enumerate().take(4) {
        let provider = if i < 2 {
            Provider::Google
        } else {
            Provider::Microsoft
        };
        seed_upstream(&emu, provider, email, zone)?;
        let pname = if i < 2 { "google" } else { "microsoft" };
        // The CalDAV user's Google calendar is written back to (CalDAV edits
        // and new appointments go upstream); the others are read-only.
        let account = connect_account(&config.public_url, &token, id, pname, i == 0).await?;
        accounts.push((name.clone(), pname, account));
    }
    println!();
    println!("calbridge demo: everything runs on this machine; nothing needs credentials.");
    println!();
    println!("  Admin API    {}/api/v1", config.public_url);
    println!("  Admin token  {token}");
    println!(
        "               try: curl -H 'Authorization: Bearer {token}' {}/api/v1/companies/{}/staff",
        config.public_url, sample.company
    );
    println!(
        "  CalDAV       {}/dav/  (or {}/.well-known/caldav)",
        config.public_url, config.public_url
    );
    println!(
        "               user {}  password {}",
        sample.caldav_user, sample.caldav_password
    );
    println!();
    println!(
        "  Connected accounts (emulated Google and Microsoft at {}):",
        emu.base_url
    );
    for (i, (name, provider, account)) in accounts.iter().enumerate() {
        println!(
            "    {name:<14} {provider:<10} {}/api/v1/accounts/{account}/status{}",
            config.public_url,
            if i == 0 {
                "  (read-write: CalDAV edits and new appointments go back to Google)"
            } else {
                "  (read-only)"
            }
        );
    }
    println!();
    println!(
        "  ICS feeds ({} appointments and the connected calendars; subscribe in any calendar app):",
        sample.appointments
    );
    for (name, url) in &sample.feeds {
        println!("    {name:<38} {url}");
    }
    println!();
    println!(
        "  Data in {} (removed on exit). Press Ctrl-C to stop.",
        dir.display()
    );
    if let Some(path) = state_file {
        let feeds: Vec<serde_json::Value> = sample
            .feeds
            .iter()
            .map(|(name, url)| {
                serde_json::json!({"name": name.split_whitespace().collect::<Vec<_>>().join(" "), "url": url})
            })
            .collect();
        let state = serde_json::json!({
            "base_url": config.public_url,
            "admin_token": token,
            "company": sample.company,
            "caldav": {
                "url": format!("{}/dav/", config.public_url),
                "username": sample.caldav_user,
                "password": sample.caldav_password,
            },
            "feeds": feeds,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&state)?)?;
    }
    shutdown.await;
    let _ = stop.send(());
    let result = serving.await?;
    emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result?)
}
