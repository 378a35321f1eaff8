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

echo "== sanitize: every extension links ASan and UBSan"
python - <<'PY'
import glob, os, subprocess, sys
import lukhas_fast
sos = sorted(glob.glob(os.path.join(os.path.dirname(lukhas_fast.__file__), "_*_c*.so")))
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
# shellcheck disable=SC2086
eval "set -- ${LUKHAS_SAN_PYTEST:--q -x}"
LD_PRELOAD="$libasan" \
PYTHONMALLOC=malloc \
ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:${UBSAN_OPTIONS:-}" \
    python -m pytest -p no:cacheprovider "$@"
echo "sanitize: suite took $((SECONDS - start)) s since start"

if [ "${LUKHAS_SAN_SKIP_TSAN:-0}" != 1 ]; then
    echo "== sanitize: TSan, SPSC core"
    bash "$root/tests/c/run_tsan.sh"
fi
echo "sanitize: done in $((SECONDS - start)) s"
