#!/usr/bin/env bash
# Fuzz smoke run (CI): every target over its committed seed corpus (plain
# Python, no atheris), then coverage-guided with atheris for a short time each.
#
#   tests/fuzz/smoke.sh [SECONDS_PER_TARGET]      (default $LUKHAS_FUZZ_SECONDS or 30)
#
# Uses the active Python.  atheris is installed into it when missing (set
# LUKHAS_FUZZ_NO_INSTALL=1 to forbid that); when it cannot be had (no wheel
# for this Python) the fuzzing step is skipped with a message and only the
# corpus runs.  LUKHAS_FUZZ_TARGETS="a b" limits the targets.
# LUKHAS_FUZZ_NATIVE=OUT (made by tests/fuzz/build_native.sh OUT) fuzzes the
# clang-instrumented build there, so the C code guides the search too.  On a
# difference the failing input is printed (hex) and left in the work folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
secs="${1:-${LUKHAS_FUZZ_SECONDS:-30}}"
targets="${LUKHAS_FUZZ_TARGETS:-loads_vectors enrich_plan compile_rule drift spsc}"
py="${PYTHON:-python}"
start=$SECONDS

echo "== fuzz: seed corpora"
for t in $targets; do
    "$py" "$here/fuzz_$t.py" --corpus-only
done

if ! "$py" -c "import atheris" 2>/dev/null; then
    if [ "${LUKHAS_FUZZ_NO_INSTALL:-0}" != 1 ]; then
        "$py" -m pip install -q atheris || true
    fi
fi
if ! "$py" -c "import atheris" 2>/dev/null; then
    echo "fuzz: atheris is not installed for $("$py" -V): coverage-guided runs skipped (corpus only)"
    exit 0
fi

native=()
if [ -n "${LUKHAS_FUZZ_NATIVE:-}" ]; then
    native=(env "LD_PRELOAD=$LUKHAS_FUZZ_NATIVE/libfuzzer.so" "PYTHONPATH=$LUKHAS_FUZZ_NATIVE/site")
fi
work="$(mktemp -d)"
status=0
for t in $targets; do
    echo "== fuzz: $t for ${secs}s"
    mkdir -p "$work/$t/corpus"
    # first folder: new inputs go there; the committed seeds are read only
    if ! "${native[@]}" "$py" "$here/fuzz_$t.py" -max_total_time="$secs" -print_final_stats=1 \
            -artifact_prefix="$work/$t/" "$work/$t/corpus" "$here/corpus/$t" \
            >"$work/$t/log" 2>&1; then
        status=1
        tail -n 40 "$work/$t/log"
        for f in "$work/$t"/crash-* "$work/$t"/timeout-* "$work/$t"/oom-*; do
            [ -e "$f" ] || continue
            echo "fuzz: $t failing input $f:"
            od -A d -t x1 "$f" | head -n 40
        done
    else
        grep -E "KNOWN issue-13|stat::number_of_executed_units|Done [0-9]+ runs" "$work/$t/log" || true
    fi
done
echo "fuzz: smoke done in $((SECONDS - start)) s (work folder $work)"
exit $status
