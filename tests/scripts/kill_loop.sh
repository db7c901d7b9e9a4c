#!/usr/bin/env bash
# The kill loop of tests/persistence_kill_loop.rs for longer than the suite runs it:
# roost serve in disk-unbuffered mode killed at random moments under QoS 1/2 load, counting
# acknowledged-but-lost messages and QoS 2 duplicates (both must stay at zero).
# Usage: tests/scripts/kill_loop.sh [SECONDS]   (default 600)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOST_KILL_LOOP_SECS="${1:-600}" cargo test --release --test persistence_kill_loop -- --nocapture
