#!/usr/bin/env bash
# The chaos harness (scripts/chaos.py): a job whose processes are killed,
# stopped and lose push acknowledgements, checked against an undisturbed run
# of the same job. With no arguments: one seed of a 20-fault schedule.
#   scripts/chaos.sh [--seed N] [--faults K] [--short] [--mode SYNC|ASYNC]
#                    [--workers N] [--wal] [--run-dir DIR] [--no-build]
# Exit code: 0 every check passed, 1 a check failed, 2 bad usage.
set -euo pipefail
exec python3 "$(dirname "$0")/chaos.py" "$@"
