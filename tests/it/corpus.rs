//! The parser and the recurrence engine over a folder of real-world
//! iCalendar files: `$CALBRIDGE_CORPUS` (CI points it at the shared corpus
//! of 499 files written by other software) or, unset, `fixtures/ics/`.
//!
//! Every file must either round-trip (serialize(parse(x)) parses to the
//! identical tree: no property lost or altered) or be refused with a
//! message. Every accepted calendar is then split per UID and run through
//! `object::analyze` and `recur::instances` over two years, each file under
//! a time limit, with a bounded number of instances. Nothing may panic or
//! hang. The counts and every refusal are printed for the CI log.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use calbridge::ics::object::{analyze, split_by_uid};
use calbridge::ics::recur::{instances, ExpandOptions};
use calbridge::ics::{parse_all, serialize, Component};
use chrono::{DateTime, TimeZone, Utc};

/// Per-file limit: generous for a debug build on a loaded machine; a hang
/// or a runaway expansion takes far longer.
const FILE_TIMEOUT: Duration = Duration::from_secs(20);

const MAX_INSTANCES: usize = 5_000;

#[derive(Debug, Default)]
struct FileReport {
    refused: Option<String>,
    objects: usize,
    invalid_objects: Vec<String>,
    instances: usize,
}

fn corpus_dir() -> PathBuf {
    match std::env::var_os("CALBRIDGE_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ics"),
    }
}

fn check_file(bytes: &[u8]) -> Result<FileReport, String> {
    let mut report = FileReport::default();
    let roots = match parse_all(bytes) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            if msg.trim().is_empty() {
                return Err("refused with an empty message".into());
            }
            report.refused = Some(msg);
            return Ok(report);
        }
    };
    if roots.is_empty() {
        report.refused = Some("(no component)".into());
        return Ok(report);
    }
    // Round trip: every root serialises to bytes that parse to the same tree.
    let mut out = Vec::new();
    for r in &roots {
        out.extend(serialize(r));
    }
    let back = parse_all(&out).map_err(|e| format!("own output refused: {e}"))?;
    if back != roots {
        let first = roots
            .iter()
            .zip(&back)
            .find(|(a, b)| a != b)
            .map(|(a, b)| first_difference(a, b))
            .unwrap_or_else(|| "different number of components".into());
        return Err(format!("round trip changed the tree: {first}"));
    }
    for root in roots.iter().filter(|r| r.name == "VCALENDAR") {
        for obj in split_by_uid(root) {
            if obj.children_named("VEVENT").next().is_none() {
                continue;
            }
            report.objects += 1;
            let opts = ExpandOptions {
                max_instances: MAX_INSTANCES,
                ..ExpandOptions::default()
            };
            let (from, to) = match analyze(&obj, &opts) {
                Ok(info) => window(info.start),
                Err(e) => {
                    report.invalid_objects.push(e.to_string());
                    window(i64::MIN)
                }
            };
            // Expansion must not panic even for objects analyze refused.
            if let Ok(list) = instances(&obj, from, to, &opts) {
                if list.len() > MAX_INSTANCES {
                    return Err(format!(
                        "{} instances, over the cap of {MAX_INSTANCES}",
                        list.len()
                    ));
                }
                if list.windows(2).any(|w| w[0].start > w[1].start) {
                    return Err("instances not sorted".into());
                }
                report.instances += list.len();
            }
        }
    }
    Ok(report)
}

/// Two years from the series' start (from 2020 for undated ones).
fn window(start: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let from = if start == i64::MIN {
        Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap()
    } else {
        DateTime::from_timestamp(start, 0).unwrap_or_default()
    };
    (from, from + chrono::Duration::days(730))
}

fn first_difference(a: &Component, b: &Component) -> String {
    if a.name != b.name {
        return format!("component {} became {}", a.name, b.name);
    }
    for (pa, pb) in a.props.iter().zip(&b.props) {
        if pa != pb {
            return format!("in {}: {pa:?} became {pb:?}", a.name);
        }
    }
    if a.props.len() != b.props.len() {
        return format!(
            "in {}: {} properties became {}",
            a.name,
            a.props.len(),
            b.props.len()
        );
    }
    for (ca, cb) in a.children.iter().zip(&b.children) {
        if ca != cb {
            return first_difference(ca, cb);
        }
    }
    format!(
        "in {}: {} children became {}",
        a.name,
        a.children.len(),
        b.children.len()
    )
}

#[test]
fn corpus_round_trips_or_is_refused_and_expands() {
    let dir = corpus_dir();
    let mut listing: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    listing.sort();
    assert!(!listing.is_empty(), "no files in {}", dir.display());

    let started = Instant::now();
    let (mut read, mut accepted, mut objects, mut invalid, mut total_instances) = (0, 0, 0, 0, 0);
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut invalid_reasons: Vec<String> = Vec::new();
    for path in &listing {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        read += 1;
        // Each file on its own thread, so a hang shows up as a named
        // failure instead of a stuck CI job.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(check_file(&bytes));
        });
        match rx.recv_timeout(FILE_TIMEOUT) {
            Ok(Ok(report)) => {
                if let Some(msg) = report.refused {
                    refused.push((name, msg));
                    continue;
                }
                accepted += 1;
                objects += report.objects;
                invalid += report.invalid_objects.len();
                invalid_reasons.extend(report.invalid_objects);
                total_instances += report.instances;
            }
            Ok(Err(e)) => failures.push(format!("{name}: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                failures.push(format!("{name}: no result after {FILE_TIMEOUT:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => failures.push(format!("{name}: panicked")),
        }
    }

    println!(
        "corpus {}: {read} files read in {:?}",
        dir.display(),
        started.elapsed()
    );
    println!("  accepted (round-trip identical): {accepted}");
    println!("  refused with a message: {}", refused.len());
    println!("  event objects analysed: {objects} ({invalid} refused by object::analyze), instances in 2-year windows: {total_instances}");
    for (name, msg) in &refused {
        println!("  refused {name}: {msg}");
    }
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for r in &invalid_reasons {
        // Group by the message without the quoted names and values.
        let key: String = r.split('"').step_by(2).collect::<Vec<_>>().join("…");
        match reasons.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => reasons.push((key, 1)),
        }
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (reason, n) in reasons.iter().take(25) {
        println!("  object::analyze refused {n}x: {reason}");
    }
    assert_eq!(read, listing.len(), "every listed file must be read");
    if std::env::var_os("CALBRIDGE_CORPUS").is_none() {
        // Our own fixtures say in their names which ones must be refused.
        let refused_names: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
        let expected: Vec<String> = listing
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .filter(|n| n.starts_with("refused-"))
            .collect();
        assert_eq!(refused_names, expected, "fixtures refused");
        assert!(
            objects >= 12 && total_instances > 100,
            "{objects} objects, {total_instances} instances"
        );
    }
    assert_eq!(accepted + refused.len() + failures.len(), read);
    assert!(
        failures.is_empty(),
        "{} files failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
