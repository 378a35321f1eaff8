#!/usr/bin/env bash
# Build the SPSC core's two-thread test with ThreadSanitizer and run it.
# Exits non-zero on any TSan report or ordering/loss failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mktemp -d)"
cc -std=c11 -O1 -g -fsanitize=thread -pthread -I"$root/csrc" \
   "$root/csrc/spsc.c" "$here/test_spsc_tsan.c" -o "$out/test_spsc_tsan"
TSAN_OPTIONS="halt_on_error=1 exitcode=66 ${TSAN_OPTIONS:-}" setarch "$(uname -m)" -R "$out/test_spsc_tsan"
