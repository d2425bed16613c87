"""Tell early that a GAN run has failed: D has won and G no longer learns.

In such a run D(G(z)) falls towards 0 within the first few hundred steps, D(x) goes to 1, and G's
images stay a texture without digits; none recovered in the runs measured (docs/results.md). The
check reads the metrics the trainer logs anyway, so it costs no device work. It applies to the
models whose D outputs a probability (gan, infogan, minegan): a WGAN critic's scores are not one.
"""

import json
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from fastinfo import atomic

# D(G(z)) averaged over WINDOW consecutive steps below THRESHOLD, within the first WITHIN steps
THRESHOLD = 0.1
WINDOW = 100
WITHIN = 1000
# the file a failed run's folder holds: what was seen, for the report and the sweep
FAILED_FILE = "failed.json"


@dataclass(frozen=True)
class Failure:
    """What the check saw: mean D(G(z)) over steps first..last, below threshold."""

    first: int
    last: int
    d_fake: float
    threshold: float = THRESHOLD

    def describe(self) -> str:
        return (f"D(G(z)) averaged {self.d_fake:.3f} over steps {self.first}-{self.last} (below {self.threshold:g}): "
                f"D has won and G has stopped learning")


class FailureCheck:
    """Feed it every logged metrics row, in step order; it answers the Failure once, when the
    mean d_fake over the last `window` steps falls below `threshold` at a step <= `within`."""

    def __init__(self, threshold: float = THRESHOLD, window: int = WINDOW, within: int = WITHIN):
        self.threshold, self.window, self.within = threshold, window, within
        self.recent: deque[tuple[int, float]] = deque(maxlen=window)
        self.failure: Failure | None = None

    def update(self, rows: list[dict]) -> Failure | None:
        """The Failure if these rows (dicts with "step" and "d_fake") complete it, else None; None
        again after it was answered once, and for rows without d_fake."""
        if self.failure is not None:
            return None
        for row in rows:
            if "d_fake" not in row or row["step"] > self.within:
                continue
            self.recent.append((row["step"], row["d_fake"]))
            if len(self.recent) == self.window:
                mean = sum(v for _, v in self.recent) / self.window
                if mean < self.threshold:
                    self.failure = Failure(self.recent[0][0], self.recent[-1][0], mean, self.threshold)
                    return self.failure
        return None


def record(run: Path, failure: Failure) -> None:
    """Write FAILED_FILE into the run folder."""
    atomic.write_text(run / FAILED_FILE, json.dumps(asdict(failure), indent=2) + "\n")


def recorded(run: Path) -> Failure | None:
    """The Failure a run's folder records, or None (also for a file that cannot be read)."""
    try:
        return Failure(**json.loads((run / FAILED_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
