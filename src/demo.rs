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

/// What the demo created, for printing (and for tests).
pub struct Sample {
    pub company: String,
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
        |_, _| Default::default(),
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

/// Run the demo until `shutdown` resolves. Its data lives in a temporary
/// directory removed on exit.
pub async fn run(
    listen: Option<String>,
    state_file: Option<std::path::PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = bind(listen).await?;
    let addr = listener.local_addr()?;
    let dir = std::env::temp_dir().join(format!("calbridge-demo-{}", crypto::random_id(8)));
    let mut raw = RawConfig::default();
    raw.set("server.listen", addr.to_string());
    raw.set("store.path", dir.display().to_string());
    raw.set("sync.interval", "1m".into());
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
        "  ICS feeds ({} appointments; subscribe in any calendar app):",
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
    let result = server.run(listener, shutdown).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result?)
}
