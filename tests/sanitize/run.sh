#!/usr/bin/env bash
# Sanitizer job: build the C and Cython extensions with
# -fsanitize=address,undefined (CMake option LUKHAS_SANITIZE=ON) into a fresh
# venv of their own, check that the flags really reached every extension, run
# the test suite under them with UBSan reports fatal, then the TSan test of the
# SPSC core (tests/c/run_tsan.sh).  Exits non-zero on any report.
#
# Environment:
#   LUKHAS_SAN_VENV        venv to create (default: a fresh temporary one)
#   LUKHAS_SAN_PYTEST      pytest arguments (default: "-q -x"; e.g. '-q -x -m "not slow"')
#   LUKHAS_SAN_SKIP_TSAN=1 skip the TSan test (when the caller runs it itself)
#   LUKHAS_SAN_SKIP_BUILD=1 reuse the sanitizer venv LUKHAS_SAN_VENV as built before
#
# CPython itself is not built with ASan, so libasan is preloaded (LD_PRELOAD)
# and leak detection is off (the interpreter leaks by design at exit).
# PYTHONMALLOC=malloc routes Python objects through malloc, so ASan also sees
# out-of-bounds accesses into objects the extensions allocate.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS

cc="${CC:-cc}"
libasan="$("$cc" -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
    echo "sanitize: $cc has no libasan.so ($libasan)" >&2
    exit 2
fi

venv="${LUKHAS_SAN_VENV:-$(mktemp -d)/venv-sanitize}"
if [ "${LUKHAS_SAN_SKIP_BUILD:-0}" = 1 ]; then
    # shellcheck disable=SC1091
    . "$venv/bin/activate"   # re-run the checks on an existing sanitizer venv
else
    python3 -m venv "$venv"
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
    python -m pip install -q --upgrade pip
    echo "== sanitize: build (LUKHAS_SANITIZE=ON) into $venv"
    # A build dir of its own: the CMake cache of the ordinary build must neither
    # leak into this one nor keep LUKHAS_SANITIZE=ON for the next ordinary build.
    python -m pip install -q \
        -C cmake.define.LUKHAS_SANITIZE=ON \
        -C "build-dir=build/sanitize-{wheel_tag}" \
        ".[test]"
    echo "sanitize: venv and build took $((SECONDS - start)) s"
fi

echo "== sanitize: every extension links ASan and UBSan"
python - <<'PY'
import glob, importlib.util, os, subprocess, sys
# find, not import: loading an ASan extension without the preload aborts
pkg = importlib.util.find_spec("lukhas_fast").submodule_search_locations[0]
sos = sorted(glob.glob(os.path.join(pkg, "_*_c*.so")))
if not sos:
    sys.exit("sanitize: no C extension installed")
bad = []
for so in sos:
    needed = subprocess.run(["readelf", "-d", so], check=True, capture_output=True, text=True).stdout
    syms = subprocess.run(["nm", "-D", "--undefined-only", so], check=True, capture_output=True, text=True).stdout
    if "libasan" not in needed or "__asan_report_load" not in syms or "__ubsan_handle" not in syms:
        bad.append(os.path.basename(so))
if bad:
    sys.exit(f"sanitize: built without the sanitizers: {bad}")
print(f"{len(sos)} extensions instrumented")
PY

echo "== sanitize: test suite under ASan+UBSan"
# --capture=sys: pytest's default fd-level capture would swallow a report
# that halts the process (it dies with the capture file); the runtimes write
# to fd 2 directly, so with sys-level capture they reach this log.  (UBSan's
# log_path does not work with gcc's combined ASan+UBSan runtime.)
# allocator_may_return_null: a huge request fails as MemoryError, as with the
# system allocator, instead of aborting.
# shellcheck disable=SC2086
eval "set -- ${LUKHAS_SAN_PYTEST:--q -x}"
san() {
    LD_PRELOAD="$libasan" \
    PYTHONMALLOC=malloc \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:exitcode=86:${ASAN_OPTIONS:-}" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:${UBSAN_OPTIONS:-}" \
        "$@"
}
t0=$SECONDS
san python -m pytest -p no:cacheprovider --capture=sys "$@"
echo "sanitize: suite took $((SECONDS - t0)) s"
echo "== sanitize: fuzz seed corpora under ASan+UBSan"
for target in "$root"/tests/fuzz/fuzz_*.py; do
    san python "$target" --corpus-only
done

if [ "${LUKHAS_SAN_SKIP_TSAN:-0}" != 1 ]; then
    echo "== sanitize: TSan, SPSC core"
    bash "$root/tests/c/run_tsan.sh"
fi
echo "sanitize: done in $((SECONDS - start)) s"
