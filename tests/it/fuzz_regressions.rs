//! Every input the fuzzers ever failed on, replayed through the same checks
//! (`calbridge::fuzzing`) in a plain `cargo test`: the files under
//! `fuzz/regressions/<target>/` (minimised crash, timeout and OOM inputs,
//! committed), plus the hand-written seeds under `fuzz/seeds/<target>/`.
//!
//! Each file runs in its own thread with a time limit, so an input that
//! hangs again fails the test instead of stalling it; every failing file is
//! named, not only the first.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use calbridge::fuzzing;

/// Per input. The fuzzers' own limit is 10 s on an optimised build; a debug
/// build is several times slower, and CI shares two cores. A regression of
/// a fixed hang takes far longer than this.
const INPUT_TIMEOUT: Duration = Duration::from_secs(60);

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Replays every regression and seed file of `target` through `check`.
/// Returns how many files ran (regressions, seeds).
fn replay(target: &str, check: fn(&[u8])) -> (usize, usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let regressions = files(&root.join("regressions").join(target));
    let seeds = files(&root.join("seeds").join(target));
    let mut failures = Vec::new();
    for path in regressions.iter().chain(&seeds) {
        let bytes = std::fs::read(path).expect("readable input");
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| check(&bytes));
            let _ = tx.send(outcome.is_ok());
        });
        match rx.recv_timeout(INPUT_TIMEOUT) {
            Ok(true) => {}
            Ok(false) => failures.push(format!("{}: panicked (see above)", path.display())),
            Err(_) => failures.push(format!(
                "{}: still running after {:?}",
                path.display(),
                started.elapsed()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failures.len(),
        regressions.len() + seeds.len(),
        failures.join("\n")
    );
    (regressions.len(), seeds.len())
}

#[test]
fn ics_roundtrip() {
    replay("ics_roundtrip", fuzzing::ics_roundtrip);
}

#[test]
fn ics_expand() {
    let (_, seeds) = replay("ics_expand", fuzzing::ics_expand);
    assert!(seeds > 0, "the ics_expand seeds are missing");
}

#[test]
fn dav_request() {
    let (_, seeds) = replay("dav_request", fuzzing::dav_request);
    assert!(seeds > 0, "the dav_request seeds are missing");
}

#[test]
fn google_map() {
    let (_, seeds) = replay("google_map", fuzzing::google_map);
    assert!(seeds > 0, "the google_map seeds are missing");
}

#[test]
fn graph_map() {
    let (_, seeds) = replay("graph_map", fuzzing::graph_map);
    assert!(seeds > 0, "the graph_map seeds are missing");
}
