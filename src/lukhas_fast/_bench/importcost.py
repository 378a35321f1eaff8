"""Benchmark rows of the import cost: ``-X importtime`` of ``import lukhas_fast``
and of one family, in fresh interpreters (best of several runs), with the
number of modules each import adds and the share that is numpy's."""

from __future__ import annotations

import subprocess
import sys
from typing import Dict, List, Mapping

from lukhas_fast._bench.core import Row, measurement

_TARGETS = (
    ("import lukhas_fast", "import lukhas_fast"),
    ("import lukhas_fast.ring", "import lukhas_fast.ring"),
    ("lukhas_fast.Ring (lazy attribute)", "import lukhas_fast; lukhas_fast.Ring"),
    ("import numpy (reference)", "import numpy"),
)


def _one(stmt: str) -> Dict[str, float]:
    # the marker separates the interpreter's own start-up imports from the statement's
    code = (f"import sys; n0 = len(sys.modules); sys.stderr.write('@@mark\\n'); sys.stderr.flush(); {stmt}; "
            "print(len(sys.modules) - n0)")
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    total = numpy = 0.0
    lines = res.stderr.splitlines()
    for line in lines[lines.index("@@mark") + 1:]:
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if name.startswith("  "):  # nested: already inside a top-level import's cumulative time
            if name.strip() == "numpy":
                numpy = float(cumulative)
            continue
        total += float(cumulative)
        if name.strip() == "numpy":
            numpy = float(cumulative)
    return {"ms": total / 1000.0, "numpy ms": numpy / 1000.0, "+modules": float(res.stdout.split()[-1])}


@measurement("Import cost (-X importtime, fresh interpreter, best run)", "import")
def import_cost(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """Cumulative import time of each statement, numpy's part of it, modules added."""
    runs = 3 if quick else 7
    rows = []
    for label, stmt in _TARGETS:
        best = min((_one(stmt) for _ in range(runs)), key=lambda r: r["ms"])
        best["without numpy ms"] = best["ms"] - best["numpy ms"]
        rows.append(Row(label, best, "ms / count", "budget: numpy + 15 ms" if stmt == "import lukhas_fast" else ""))
    return rows
