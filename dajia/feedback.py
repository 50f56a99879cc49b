"""The loop back, read from the store: every label people gave, for ``dajia train --feedback``.

* reviewer decisions and appeal outcomes from the sanction workflow's case events
  (``sanctions.labels.reviewer_labels``: close/ban → counterfeit, dismiss → genuine, an upheld appeal →
  genuine and the case's counterfeit verdict withdrawn);
* audit-sample findings from the console (``serving.console.sample.finding_labels``: counterfeit /
  genuine; unsure is no label).

Each row is a verdict of the data contract dated at its decision time, with ``source`` (decision,
appeal, audit_sample) and ``simulated`` (decided by one of the demo's stand-in humans). No CSV merge:
``training.feedback.apply_feedback`` adds them to the marketplace and reports the counts.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from core.errors import DajiaError


def read_feedback(engine: Engine) -> pd.DataFrame:
    """All feedback labels in the store (decisions, appeal outcomes, audit-sample findings)."""
    from sanctions.labels import reviewer_labels
    from serving.console.sample import finding_labels

    try:
        frames = [reviewer_labels(engine), finding_labels(engine)]
    except Exception as exc:
        raise DajiaError(f"--feedback: cannot read reviewer decisions and findings from the store: {exc}") from exc
    out = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    return out.sort_values(["decided_at", "verdict_id"], kind="stable").reset_index(drop=True)
