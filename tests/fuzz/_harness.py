"""Shared driver of the fuzz targets in this folder (not a test module).

Every ``fuzz_<name>.py`` defines ``one_input(data: bytes) -> None``, which
raises (an ``AssertionError`` naming both answers) when the C tier and the
pure-Python oracle disagree, and ends with ``harness.main("<name>", one_input)``.
Run a target as

* ``python tests/fuzz/fuzz_<name>.py --corpus-only [FILE_OR_DIR ...]`` -- a
  plain regression run (no atheris, no pytest) over the committed seed corpus
  ``tests/fuzz/corpus/<name>/`` and any extra files or folders given;
* ``python tests/fuzz/fuzz_<name>.py [libFuzzer flags] [CORPUS_DIR ...]`` --
  coverage-guided fuzzing with atheris (``pip install atheris``); the
  pure-Python modules of ``lukhas_fast`` are instrumented for coverage.

Inputs are decoded by :class:`Data` (plain Python, no atheris), so a seed
means the same thing in both modes and a crash file reproduces with
``--corpus-only CRASH_FILE``.

Every C-vs-Python difference is fatal: the issue-13 rows these targets first
found are fixed, and their inputs stay in the seed corpora as
``corpus/*/issue13_*`` regressions.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from pathlib import Path
from typing import Callable, Iterator, List, Sequence

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

_current: bytes = b""


class Data:
    """Deterministic reader of a fuzz input: every ``take_*`` consumes bytes
    from the front and returns a neutral value once the input is exhausted."""

    def __init__(self, data: bytes) -> None:
        self.buf = data
        self.pos = 0

    def left(self) -> int:
        return len(self.buf) - self.pos

    def take_bytes(self, n: int) -> bytes:
        out = self.buf[self.pos:self.pos + max(n, 0)]
        self.pos += len(out)
        return out

    def take_int(self, lo: int, hi: int) -> int:
        """An int in [lo, hi] (lo when exhausted)."""
        span = hi - lo
        if span <= 0:
            return lo
        nbytes = (span.bit_length() + 7) // 8
        raw = int.from_bytes(self.take_bytes(nbytes).ljust(nbytes, b"\0"), "little")
        return lo + raw % (span + 1)

    def take_bool(self) -> bool:
        return bool(self.take_int(0, 1))

    def pick(self, seq: Sequence):
        return seq[self.take_int(0, len(seq) - 1)]

    def take_f64(self) -> float:
        """Any double, NaN and infinities included (8 raw bytes)."""
        raw = self.take_bytes(8).ljust(8, b"\0")
        return struct.unpack("<d", raw)[0]

    def take_text(self, max_len: int, alphabet: Sequence[str] = ()) -> str:
        """A string of up to ``max_len`` characters: from ``alphabet`` if given,
        else any code point except surrogates."""
        n = self.take_int(0, max_len)
        out: List[str] = []
        for _ in range(n):
            if not self.left():
                break
            if alphabet:
                out.append(self.pick(alphabet))
            else:
                cp = self.take_int(0, 0x10FFFF - 0x800)
                cp = cp if cp < 0xD800 else cp + 0x800  # skip the surrogate block
                out.append(chr(cp))
        return "".join(out)


def _corpus_files(paths: Sequence[str], name: str) -> Iterator[Path]:
    roots = [Path(p) for p in paths] or [CORPUS / name]
    for root in roots:
        if root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file())
        elif root.is_file():
            yield root
        else:
            raise SystemExit(f"fuzz {name}: no such corpus file or folder: {root}")


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Import ``lukhas_fast`` under atheris' coverage instrumentation when fuzzing."""
    if _mode() == "fuzz":
        import atheris

        with atheris.instrument_imports(include=["lukhas_fast"]):
            yield
    else:
        yield


def _mode() -> str:
    return "corpus" if "--corpus-only" in sys.argv[1:] else "fuzz"


def main(name: str, one_input: Callable[[bytes], None]) -> None:
    """Run ``one_input`` over the seed corpus (``--corpus-only``) or under atheris."""
    os.environ.setdefault("LUKHAS_FAST_METRICS", "0")
    args = [a for a in sys.argv[1:] if a != "--corpus-only"]

    def run_one(data: bytes) -> None:
        global _current
        _current = data
        one_input(data)

    if _mode() == "corpus":
        n = 0
        for path in _corpus_files(args, name):
            data = path.read_bytes()
            try:
                run_one(data)
            except Exception:
                print(f"fuzz {name}: FAILED on {path} ({data[:200]!r})", file=sys.stderr)
                raise
            n += 1
        if not n:
            raise SystemExit(f"fuzz {name}: empty corpus")
        print(f"fuzz {name}: {n} corpus inputs, 0 differences")
        return
    import atheris

    # Defaults a caller's own flags override: inputs up to 4 KiB, 30 s per
    # input before it counts as a hang, the target's token dictionary.
    defaults = ["-max_len=4096", "-timeout=30"]
    words = HERE / f"{name}.dict"
    if words.exists():
        defaults.append(f"-dict={words}")
    given = {a.split("=", 1)[0] for a in args if a.startswith("-")}
    args = [a for a in defaults if a.split("=", 1)[0] not in given] + args
    # The target's own branches (result shapes, error paths) count as coverage
    # too; the pure-Python tiers are instrumented at import (instrumented()).
    one_input = atheris.instrument_func(one_input)
    atheris.Setup([sys.argv[0]] + args, run_one)
    atheris.Fuzz()
