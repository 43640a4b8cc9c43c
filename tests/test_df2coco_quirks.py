"""The converter finds every quirk the synthetic generator injects, and nothing else."""
from __future__ import annotations

import json
from pathlib import Path

from df2coco import problems as P
from df2coco.convert import convert_split
from df2coco.synthetic import generate_split


def _stem(path: str) -> str:
    return Path(path).stem


def _order(record: tuple) -> tuple:
    """Sort key of (stem, item key or None, problem) records."""
    stem, item, problem = record
    return stem, item or "", problem


def test_every_injected_quirk_is_found_exactly_once(tmp_path):
    summary = generate_split(tmp_path / "split", 90, seed=11, quirk_rate=1.0, min_side=96, max_side=160, workers=1)
    result = convert_split(tmp_path / "split", tmp_path / "out.json", workers=1, report_path=tmp_path / "r.jsonl")
    found = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    found_keys = sorted(((_stem(r["file"]), r["item"], r["problem"]) for r in found), key=_order)
    injected = sorted((r for r in summary.quirk_records if r[2] in P.PROBLEMS), key=_order)
    assert len(injected) > 50  # the generator really injected a varied set
    assert {q for _, _, q in injected} == set(P.PROBLEMS)  # every kind of problem occurs
    assert found_keys == injected
    assert result.num_problems == len(injected)


def test_clean_generated_split_has_no_problems(tmp_path):
    summary = generate_split(tmp_path / "split", 30, seed=5, min_side=96, max_side=200, workers=1)
    result = convert_split(tmp_path / "split", tmp_path / "out.json", workers=1)
    assert result.problem_counts == {}
    assert result.num_images == summary.num_images == 30
    assert result.num_annotations == summary.num_items
