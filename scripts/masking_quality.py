"""Precision and recall of the masking detectors on the labelled corpus.

    /work/main/.venv/bin/python scripts/masking_quality.py [fixtures/masking/corpus.jsonl]

A detection counts as a true positive when it has the label's kind and overlaps the labelled
span; "exact" counts those whose span is the labelled span exactly. Regenerate the corpus with
``fixtures/masking/generate.py``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's packages

from gateway.masking import DEFAULT_PROFILE, Engine

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "masking" / "corpus.jsonl"


def evaluate(path: Path) -> dict[str, dict[str, float]]:
    engine = Engine(DEFAULT_PROFILE)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    exact: Counter[str] = Counter()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            text = record["text"].encode()
            labels = [(s, e, k) for s, e, k in record["labels"]]
            found = [(f.value_start, f.value_end, f.kind) for f in engine.findings(text)]
            matched: set[int] = set()
            for start, end, kind in found:
                hit = next(
                    (
                        i
                        for i, (ls, le, lk) in enumerate(labels)
                        if lk == kind and i not in matched and start < le and ls < end
                    ),
                    None,
                )
                if hit is None:
                    fp[kind] += 1
                    continue
                matched.add(hit)
                tp[kind] += 1
                if (start, end) == labels[hit][:2]:
                    exact[kind] += 1
            for i, (_, _, kind) in enumerate(labels):
                if i not in matched:
                    fn[kind] += 1
    report: dict[str, dict[str, float]] = {}
    for kind in sorted(set(tp) | set(fp) | set(fn)):
        positives = tp[kind] + fn[kind]
        report[kind] = {
            "labels": positives,
            "precision": tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0,
            "recall": tp[kind] / positives if positives else 1.0,
            "exact": exact[kind] / tp[kind] if tp[kind] else 1.0,
            "false_positives": fp[kind],
            "missed": fn[kind],
        }
    return report


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CORPUS
    report = evaluate(path)
    print(
        f"{'detector':<16}{'labels':>8}{'precision':>11}{'recall':>9}{'exact':>8}{'FP':>6}{'FN':>6}"
    )
    for kind, row in report.items():
        print(
            f"{kind:<16}{row['labels']:>8.0f}{row['precision']:>11.4f}{row['recall']:>9.4f}"
            f"{row['exact']:>8.4f}{row['false_positives']:>6.0f}{row['missed']:>6.0f}"
        )


if __name__ == "__main__":
    main()
