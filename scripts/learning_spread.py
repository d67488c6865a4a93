"""Print the learning tests' recorded figures from pytest JUnit XML files, one column per file.

    python scripts/learning_spread.py runs/learning_spread/*.xml

Each learning test records its per-seed figures (`record_property`); a row shows them for
every floating-point path, the spread over all of them, and whether the test passed.
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def read(path: Path) -> dict[str, tuple[str, dict[str, object]]]:
    """test id -> (outcome, recorded properties)."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        outcome = "failed" if case.find("failure") is not None or case.find("error") is not None \
            else "skipped" if case.find("skipped") is not None else "passed"
        props = {}
        for prop in case.iter("property"):
            try:
                props[prop.get("name")] = ast.literal_eval(prop.get("value", ""))
            except (ValueError, SyntaxError):
                props[prop.get("name")] = prop.get("value")
        out[name] = (outcome, props)
    return out


def main(paths: list[str]) -> int:
    runs = {Path(p).stem: read(Path(p)) for p in paths if Path(p).exists()}
    names = sorted({name for run in runs.values() for name in run})
    print(f"{'test':72s} " + " | ".join(f"{c:^26s}" for c in runs) + " | all values: min..max")
    for name in names:
        cells, values = [], []
        for run in runs.values():
            outcome, props = run.get(name, ("-", {}))
            figures = [v for v in props.values() if isinstance(v, list | float | int)]
            flat = [float(x) for v in figures for x in (v if isinstance(v, list) else [v])]
            values += flat
            cells.append(f"{outcome[:4]} " + ",".join(f"{x:.3f}" for x in flat))
        spread = f"{min(values):.3f}..{max(values):.3f}" if values else "-"
        print(f"{name:72s} " + " | ".join(f"{c:26s}" for c in cells) + f" | {spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
