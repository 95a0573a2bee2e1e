"""Smoke runs of the neighbour-search and evaluation-cost benchmarks at toy sizes: the scripts
run end to end, their methods agree where they must, and the GPU script runs on the CPU."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """Import a benchmark script as a module (its folder on sys.path, as when run)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    return load


def test_bench_neighbors_smoke(bench, tmp_path, monkeypatch, capsys):
    module = bench("bench_neighbors")
    out = tmp_path / "n.json"
    monkeypatch.setattr(sys, "argv", ["bench_neighbors", "--queries", "100", "--train", "1000",
                                      "--dim", "32", "--repeats", "2", "--stages",
                                      "--json", str(out)])
    module.main()
    rows = json.loads(out.read_text())
    assert set(rows["methods"]) == {"probekit", "faiss", "matmul", "sklearn", "paper"}
    assert all(v == 1.0 for v in rows["index_agreement_with_probekit"].values())
    assert len(rows["methods"]["probekit"]["runs_s"]) == 2 and rows["load_before"]
    assert rows["stages"]["uncertain"] == 0 and rows["stages"]["refined_per_query"] >= 2
    assert "probekit / bare faiss" in capsys.readouterr().out


def test_bench_index_smoke(bench, tmp_path, monkeypatch):
    module = bench("bench_index")
    out = tmp_path / "i.json"
    monkeypatch.setattr(sys, "argv", [
        "bench_index", "--data", str(tmp_path / "data"), "--train", "4000", "--dim", "16",
        "--queries", "200", "--clusters", "20", "--shards", "3", "--chunk-rows", "500",
        "--nlist", "32", "--nprobe", "1,32", "--repeats", "1", "--sklearn-queries", "40",
        "--json", str(out)])
    module.main()
    rows = json.loads(out.read_text())
    methods = rows["methods"]
    assert methods["sharded exact"]["identical_to_in_memory"]
    assert methods["IVF-Flat nprobe=32"]["recall_at_2"] == 1.0  # every list visited
    assert methods["sklearn brute"]["recall_at_2"] == 1.0
    assert rows["planted_copies_found_by_exact"] == 1.0
    assert rows["fresh_flagged_by_exact"] < 0.05


@pytest.mark.slow
def test_bench_eval_gpu_runs_on_cpu(bench, tmp_path):
    """The GPU evaluation-cost script at toy size on the CPU: every stage runs, no errors."""
    module = bench("bench_eval_gpu")
    assert module.main(["--out", str(tmp_path), "--tiny"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "eval_gpu.jsonl").read_text().splitlines()]
    assert not [r for r in rows if "error" in r]
    stages = {(r.get("checkpoint"), r["stage"]) for r in rows[-1]["rows"]}
    for checkpoint in ("celeba32", "diffusers"):
        for stage in ("sampling", "inception", "digits-cnn", "knn-pixels", "knn-inception",
                      "measure-nn-ratio", "measure-fid"):
            assert (checkpoint, stage) in stages
