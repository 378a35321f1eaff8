#!/usr/bin/env bash
# Build what coverage-guided fuzzing of the C code needs (optional; the
# targets run without it, guided by the pure-Python code only):
#   OUT/site/        lukhas_fast built with clang -fsanitize=fuzzer-no-link
#                    (every branch of the C and Cython code is a coverage edge)
#   OUT/libfuzzer.so clang's libFuzzer as a shared library, to preload: atheris
#                    then uses it, and the extensions find their coverage hooks
# Usage: tests/fuzz/build_native.sh OUT     (needs clang; uses the active Python)
# Then:  LD_PRELOAD=OUT/libfuzzer.so PYTHONPATH=OUT/site python tests/fuzz/fuzz_x.py ...
set -euo pipefail
out="$(mkdir -p "${1:?usage: build_native.sh OUT}" && cd "$1" && pwd)"
root="$(cd "$(dirname "$0")/../.." && pwd)"
rt="$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a"
[ -e "$rt" ] || { echo "build_native: no $rt (install clang)" >&2; exit 2; }
clang++ -shared -fPIC -o "$out/libfuzzer.so" -Wl,--whole-archive "$rt" -Wl,--no-whole-archive -lpthread
cd "$root"
rm -rf "$out/wheel" "$out/site"
CC=clang CFLAGS="-fsanitize=fuzzer-no-link" python -m pip wheel -q --no-deps \
    -C "build-dir=build/fuzz-native-{wheel_tag}" -w "$out/wheel" .
python -m pip install -q --no-deps --target "$out/site" "$out"/wheel/*.whl
echo "build_native: LD_PRELOAD=$out/libfuzzer.so PYTHONPATH=$out/site"
