"""A run's metrics.jsonl: one JSON object per logged step, appended as training goes."""

import json
import sys
from pathlib import Path

from fastinfo import atomic


def read(path: Path) -> list[dict]:
    """The rows of path, oldest first; [] when there is no file. A last row cut short by a kill
    during its append is left out: it belongs to a step after the last checkpoint. A line that is
    JSON but no row (an edit: no object, or no integer step) is left out with a warning."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines() if path.is_file() else [], 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = row.get("step") if isinstance(row, dict) else None
        if isinstance(step, bool) or not isinstance(step, int):
            print(f"warning: {path} line {number} is no metrics row (a JSON object with an integer step): "
                  f"{line[:60]!r} is left out", file=sys.stderr)
            continue
        rows.append(row)
    return rows


def append(path: Path, rows: list[dict]) -> None:
    with open(path, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def keep_until(path: Path, step: int) -> None:
    """Drop the rows after step (steps a resumed run trains again); path is replaced whole."""
    kept = [r for r in read(path) if r["step"] <= step]
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
