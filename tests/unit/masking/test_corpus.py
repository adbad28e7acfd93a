"""Detection quality on the committed labelled corpus (see scripts/masking_quality.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fixtures.masking.generate import corpus
from scripts.masking_quality import DEFAULT_CORPUS, evaluate


def test_corpus_file_is_what_the_generator_makes() -> None:
    expected = "".join(json.dumps(r, sort_keys=True) + "\n" for r in corpus())
    actual = Path(DEFAULT_CORPUS).read_text(encoding="utf-8")
    assert (
        hashlib.sha256(actual.encode()).hexdigest() == hashlib.sha256(expected.encode()).hexdigest()
    )


def test_quality_goals() -> None:
    report = evaluate(Path(DEFAULT_CORPUS))
    for kind in ("card", "ssn", "email", "iban"):
        assert report[kind]["recall"] >= 0.99, kind
        assert report[kind]["precision"] >= 0.95, kind
    for kind, row in report.items():
        assert row["recall"] >= 0.95, kind
        assert row["labels"] >= 300, kind
