#!/usr/bin/env bash
# Run one cargo-fuzz target with its seeds, dictionary and limits.
#
#   fuzz/run.sh TARGET SECONDS [more libFuzzer flags...]
#
# Seeds are copied into fuzz/corpus/TARGET (git-ignored; libFuzzer adds what
# it finds there) from fuzz/seeds/TARGET, fuzz/regressions/TARGET and, per
# target, the fixtures and the shared iCalendar corpus ($CALBRIDGE_CORPUS,
# default ../shared/corpus/ics). Crashes land in fuzz/artifacts/TARGET.
#
# The toolchain is stable, so the -Z flags cargo fuzz passes need
# RUSTC_BOOTSTRAP=1. FUZZ_SANITIZER (default: address) picks the sanitizer;
# `none` builds faster and runs about twice as fast.
#
# One process on one core (no -jobs/-workers: libFuzzer then fuzzes
# in-process and reports on stderr). Limits: -timeout (seconds per input)
# and -rss_limit_mb make a slow or memory-hungry input a failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${1:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags...]}
SECONDS_TO_RUN=${2:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags...]}
shift 2
SHARED_CORPUS=${CALBRIDGE_CORPUS:-$ROOT/../shared/corpus/ics}
SANITIZER=${FUZZ_SANITIZER:-address}

CORPUS=$ROOT/fuzz/corpus/$TARGET
mkdir -p "$CORPUS"
seed() {
  # Copy without overwriting what the fuzzer already keeps there.
  for f in "$@"; do
    if [ -f "$f" ]; then cp -n "$f" "$CORPUS/" 2>/dev/null || true; fi
  done
}
seed "$ROOT"/fuzz/seeds/"$TARGET"/* "$ROOT"/fuzz/regressions/"$TARGET"/*

case $TARGET in
  ics_roundtrip)
    seed "$ROOT"/fixtures/ics/*.ics
    if [ -d "$SHARED_CORPUS" ]; then seed "$SHARED_CORPUS"/*.ics; fi
    FLAGS=(-dict="$ROOT/fuzz/dicts/ics.dict" -max_len=65536 -timeout=10)
    ;;
  ics_expand)
    FLAGS=(-dict="$ROOT/fuzz/dicts/ics.dict" -max_len=2048 -timeout=10)
    ;;
  dav_request)
    seed "$ROOT"/fixtures/dav/requests/*.xml
    FLAGS=(-dict="$ROOT/fuzz/dicts/dav.dict" -max_len=16384 -timeout=10)
    ;;
  google_map | graph_map)
    FLAGS=(-dict="$ROOT/fuzz/dicts/json.dict" -max_len=8192 -timeout=10)
    ;;
  *)
    echo "unknown target $TARGET" >&2
    exit 2
    ;;
esac

cd "$ROOT"
# The crate's own builds may point CARGO_TARGET_DIR elsewhere; the fuzz
# build is instrumented differently and keeps its own (fuzz/target) unless
# FUZZ_TARGET_DIR says otherwise.
unset CARGO_TARGET_DIR
TARGET_DIR_ARGS=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then TARGET_DIR_ARGS=(--target-dir "$FUZZ_TARGET_DIR"); fi
RUSTC_BOOTSTRAP=1 exec cargo fuzz run --sanitizer "$SANITIZER" "${TARGET_DIR_ARGS[@]}" "$TARGET" "$CORPUS" -- \
  "${FLAGS[@]}" -rss_limit_mb=2048 -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 "$@"
