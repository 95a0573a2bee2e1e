"""Issue 14 phase 2: conditional models through ``probekit evaluate``.

Planted truth: the tiny LoRA fine-tune of ``probekit.reference.text2image`` (really trained on 8
captioned digits until it copies them), evaluated in-process by the CLI with a prompts file of
its training captions and unseen ones. Expected: per-prompt copy fraction ~0 at an early
checkpoint and high at the last for training captions, ~0 for unseen captions, tau_mem between
the first and last checkpoint, ``per_prompt.csv`` tidy, the report with the per-prompt table and
grid. Plus a tiny class-conditional series (random weights, labels from the training set),
executor equality on it, and the bad inputs: each one line, exit 2, nothing written.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from cli.harness import assert_refused, run_cli

from probekit import get_probe

pytestmark = pytest.mark.slow

#: Checkpoints of the LoRA evaluated (early, copying starts, copies).
STEPS = (200, 800, 3200)
#: Generations per prompt, unseen captions used.
PER_PROMPT, N_UNSEEN = 2, 2


def calibrated_threshold(runs) -> float:
    """The copy threshold in pixel space: the 99th percentile of held-out digits' nearest
    training cosine similarity (fresh real digits are, by construction, not copies)."""
    probe = get_probe("prompt-copy")(features="pixels", threshold=1.0)
    probe.prepare(runs.train, holdout=runs.holdout)
    return float(np.quantile(probe.holdout_similarity_, 0.99))


@pytest.fixture(scope="module")
def lora_run(runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i-evaluate")
    np.savez(root / "train.npz", images=runs.train.astype(np.float32),
             captions=np.array(runs.captions))
    np.save(root / "holdout.npy", runs.holdout.astype(np.float32))
    unseen = list(runs.unseen_captions[:N_UNSEEN])
    with open(root / "prompts.jsonl", "w") as f:
        for caption in (*runs.captions, *unseen):
            f.write(json.dumps({"prompt": caption, "n_samples": PER_PROMPT}) + "\n")
    out = root / "run"
    outcome = run_cli([
        "evaluate", str(runs.lora), "--adapter", "diffusers-text2image",
        "--adapter-set", f"base={runs.base}", "--adapter-set", "num_inference_steps=10",
        "--adapter-set", "guidance_scale=3.0",
        "--train", str(root / "train.npz"), "--holdout", str(root / "holdout.npy"),
        "--prompts", str(root / "prompts.jsonl"),
        "--probes", "prompt-copy,extraction", "--set", "prompt-copy.features=pixels",
        "--set", f"prompt-copy.threshold={calibrated_threshold(runs)}",
        "--set", "extraction.min_clique=2", "--mem-measure", "prompt-copy",
        "--steps", ",".join(map(str, STEPS)), "--out", str(out), "--quiet",
    ], timeout=600)
    assert outcome.code == 0, outcome.stderr[-2000:]
    return out, runs, unseen


def read_per_prompt(out):
    with open(out / "per_prompt.csv") as f:
        return list(csv.DictReader(f))


def test_per_prompt_copy_fraction_planted_truth(lora_run):
    out, runs, unseen = lora_run
    rows = read_per_prompt(out)
    assert list(rows[0]) == ["step", "measure", "field", "prompt", "n", "value", "ci_low",
                             "ci_high"]
    keys = [(r["step"], r["measure"], r["field"], r["prompt"]) for r in rows]
    assert len(keys) == len(set(keys))  # tidy: one row per step x measure x field x prompt
    copied = {(int(r["step"]), r["prompt"]): float(r["value"]) for r in rows
              if r["measure"] == "prompt-copy" and r["field"] == "copied"}
    assert all(int(r["n"]) == PER_PROMPT for r in rows if r["field"] == "copied")
    first, last = STEPS[0], STEPS[-1]
    train_first = np.mean([copied[(first, c)] for c in runs.captions])
    train_last = np.mean([copied[(last, c)] for c in runs.captions])
    unseen_all = [copied[(s, c)] for s in STEPS for c in unseen]
    assert train_first <= 0.1, train_first
    assert train_last >= 0.75, train_last
    assert np.mean(unseen_all) <= 0.1, unseen_all
    # copies of the caption's own image exist only for training captions
    own = {r["prompt"] for r in rows if r["field"] == "copied_own" and int(r["n"]) > 0}
    assert own == set(runs.captions)
    # the extraction probe reports its clique per prompt through the same table
    assert any(r["measure"] == "extraction" and r["field"] == "clique_size" for r in rows)


def test_tau_mem_and_recommended_checkpoint_from_prompt_copy(lora_run):
    out, _, _ = lora_run
    summary = json.loads((out / "summary.json").read_text())
    tau = summary["tau_mem"]
    assert tau["status"] == "crossed", tau
    assert STEPS[0] < tau["value"] <= STEPS[-1], tau
    assert summary["thresholds"]["mem_measure"] == "prompt-copy"
    config = json.loads((out / "config.json").read_text())
    assert config["conditions"]["source"] == "prompts file"
    assert config["n_samples"] == PER_PROMPT * (8 + N_UNSEEN)
    assert summary["files"]["per_prompt_csv"] == "per_prompt.csv"


def test_report_has_the_per_prompt_table_and_grid(lora_run):
    out, runs, _ = lora_run
    page = (out / "report.html").read_text()
    assert "<h2>Per prompt</h2>" in page and "class='per-prompt'" in page
    assert runs.captions[0] in page
    assert "Training items copied most" in page
    assert "per-prompt grid" in page and (out / "plots" / "prompt_grid.png").is_file()
    # kept samples: round-robin over the prompts, so every prompt has one in samples/
    kept = np.load(out / "samples" / f"step-{STEPS[-1]:08d}.npy")
    assert len(kept) == PER_PROMPT * (8 + N_UNSEEN)


# -- class-conditional, executors and bad inputs (tiny random models) ---------------------------


@pytest.fixture(scope="module")
def class_series(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    torch = pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("classcond-evaluate")
    for step, seed in ((10, 0), (20, 1)):
        torch.manual_seed(seed)
        diffusers.UNet2DModel(
            sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), norm_num_groups=4, num_class_embeds=3,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
        ).save_pretrained(root / "series" / f"checkpoint-{step}" / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(
        root / "series" / "scheduler")
    rng = np.random.default_rng(0)
    images = rng.random((12, 1, 8, 8)).astype(np.float32)
    np.savez(root / "train.npz", images=images, labels=np.arange(12) % 3)
    np.save(root / "plain.npy", images)
    np.save(root / "holdout.npy", rng.random((12, 1, 8, 8)).astype(np.float32))
    samples = root / "samples"
    samples.mkdir()
    for step in (1, 2):
        np.save(samples / f"step-{step}.npy", rng.random((6, 1, 8, 8)).astype(np.float32))
    (root / "labels.jsonl").write_text('{"label": 0, "n_samples": 3}\n{"label": 2}\n')
    np.savez(root / "train_zeros.npz", images=images, labels=np.zeros(12, dtype=np.int64))
    (root / "labels01.jsonl").write_text('{"label": 0, "n_samples": 2}\n{"label": 1, '
                                         '"n_samples": 2}\n')
    (root / "captions.txt").write_text("a red car\na blue car\n")
    (root / "bad.jsonl").write_text('{"prompt": "a red car"}\n{"prompt": 3}\n')
    return root


def class_args(root, out, *extra):
    return ["evaluate", str(root / "series"), "--adapter", "diffusers-class-conditional",
            "--adapter-set", "num_inference_steps=2", "--train", str(root / "train.npz"),
            "--holdout", str(root / "holdout.npy"), "--probes", "prompt-copy,nn-ratio",
            "--set", "prompt-copy.features=pixels", "--set", "nn-ratio.scope=prompt",
            "--out", str(out), "--quiet", *extra]


def test_class_conditional_through_evaluate_and_executors_agree(class_series, tmp_path):
    serial = run_cli(class_args(class_series, tmp_path / "serial", "--samples-per-prompt",
                                "4"))
    assert serial.code == 0, serial.stderr[-2000:]
    config = json.loads((tmp_path / "serial" / "config.json").read_text())
    assert config["conditions"]["prompts"] == [[0, 4], [1, 4], [2, 4]]
    assert config["n_samples"] == 12
    rows = read_per_prompt(tmp_path / "serial")
    assert {r["prompt"] for r in rows} == {"0", "1", "2"}
    assert {(r["measure"], r["field"]) for r in rows} >= {
        ("prompt-copy", "copied"), ("nn-ratio", "memorized_prompt")}
    # a prompts file of labels chooses what is sampled
    labels = run_cli(class_args(class_series, tmp_path / "labels", "--prompts",
                                str(class_series / "labels.jsonl"), "--n-samples", "4"))
    assert labels.code == 0, labels.stderr[-2000:]
    config = json.loads((tmp_path / "labels" / "config.json").read_text())
    assert config["conditions"]["prompts"] == [[0, 3], [2, 2]]  # label 2: 4 // 2 prompts
    assert config["n_samples"] == 5


def test_the_conditions_travel_in_the_task_context(class_series, tmp_path):
    """What a process pool or Ray worker receives (the pickled context and task) samples the
    same prompts and gives the same numbers as the driver (a real pool costs ~40 s here)."""
    import pickle

    from probekit.evaluator import open_series
    from probekit.tasks import evaluate_checkpoint_task

    prepared = open_series(
        class_series / "series", out=tmp_path / "run", train=class_series / "train.npz",
        adapter="diffusers-class-conditional", adapter_settings={"num_inference_steps": 2},
        probes="prompt-copy", measure_settings={"prompt-copy": {"features": "pixels"}},
        samples_per_prompt=2, quiet=True)
    ev = prepared.evaluator
    try:
        ev._prepare(ev.measure_names)
        context = ev.context()
        assert context.conditions == (0, 0, 1, 1, 2, 2)
        task = ev._task(prepared.checkpoints[0])
        here = evaluate_checkpoint_task(task, context)
        there = evaluate_checkpoint_task(pickle.loads(pickle.dumps(task)),
                                         pickle.loads(pickle.dumps(context)))
    finally:
        ev.close()
    a, b = here.results[0], there.results[0]
    assert a.values == b.values
    np.testing.assert_array_equal(a.per_sample["condition"], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(a.per_sample["similarity"], b.per_sample["similarity"])
    np.testing.assert_array_equal(here.kept_samples, there.kept_samples)


def test_noise_magnitude_through_evaluate(class_series, tmp_path):
    """A measure that needs the model and the conditions (Wen et al.): scored per checkpoint
    with the prompts of the run, a per-prompt score row for each label."""
    root = class_series
    outcome = run_cli([
        "evaluate", str(root / "series"), "--adapter", "diffusers-class-conditional",
        "--adapter-set", "num_inference_steps=2", "--adapter-set", "guidance_scale=2.0",
        "--adapter-set", "null_class=2", "--train", str(root / "train_zeros.npz"),
        "--prompts", str(root / "labels01.jsonl"), "--probes", "noise-magnitude",
        "--set", "noise-magnitude.n_steps=2", "--out", str(tmp_path / "run"), "--quiet"])
    assert outcome.code == 0, outcome.stderr[-2000:]
    rows = [r for r in read_per_prompt(tmp_path / "run") if r["field"] == "score"]
    assert {(r["step"], r["prompt"]) for r in rows} == {
        (s, p) for s in ("10", "20") for p in ("0", "1")}
    assert all(float(r["value"]) > 0 for r in rows)
    results = (tmp_path / "run" / "results.csv").read_text()
    assert "noise-magnitude,auc," in results


@pytest.mark.parametrize("case", ["unconditional+prompts", "no-conditions", "no-train-labels",
                                  "captions-for-labels", "malformed-prompts"])
def test_bad_conditional_inputs_are_one_line(class_series, tmp_path, case):
    root = class_series
    out = tmp_path / "out"
    if case == "unconditional+prompts":
        argv = ["evaluate", str(root / "samples"), "--train", str(root / "plain.npy"),
                "--probes", "nn-ratio", "--prompts", str(root / "captions.txt"),
                "--out", str(out)]
        match = "prompts apply to a conditional model"
    elif case == "no-conditions":
        argv = ["evaluate", str(root / "samples"), "--train", str(root / "train.npz"),
                "--probes", "nn-ratio", "--set", "nn-ratio.scope=prompt", "--out", str(out)]
        match = "nn-ratio: needs the prompt"
    elif case == "no-train-labels":
        argv = class_args(root, out)
        argv[argv.index(str(root / "train.npz"))] = str(root / "plain.npy")
        match = "nn-ratio: needs the training set's captions or labels"
    elif case == "captions-for-labels":
        argv = class_args(root, out, "--prompts", str(root / "captions.txt"))
        match = "takes class labels; the prompts file .* holds captions"
    else:
        argv = class_args(root, out, "--prompts", str(root / "bad.jsonl"))
        match = r"line 2: 'prompt' must be a string"
    assert_refused(argv, tmp_path, match=match)
    assert not out.exists()


def test_the_tutorial_command_parses():
    """docs/sd_finetune.md section 5: its commands use flags that exist."""
    import re
    import shlex
    from pathlib import Path

    from probekit.cli import build_parser

    page = (Path(__file__).resolve().parents[2] / "docs" / "sd_finetune.md").read_text()
    section = page.split("## 5. The same with one command")[1].split("## 6.")[0]
    commands = [b for b in re.findall(r"```text\n(.*?)```", section, flags=re.S)
                if b.startswith("probekit evaluate")]
    assert len(commands) == 2
    parser = build_parser()
    for block in commands:
        argv = shlex.split(block.replace("\\\n", " "))[1:]
        values = [str(v) for v in vars(parser.parse_args(argv)).values()]
        assert "prompts.jsonl" in values and any("prompt-copy" in v for v in values)


def test_a_conditional_run_resumes_and_refuses_other_prompts(class_series, tmp_path):
    root, out = class_series, tmp_path / "run"
    argv = class_args(root, out, "--prompts", str(root / "labels.jsonl"), "--n-samples", "4")
    assert run_cli(argv).code == 0
    before = (out / "per_prompt.csv").read_text()
    again = run_cli(argv)  # every (step, measure) is committed: nothing is evaluated again
    assert again.code == 0, again.stderr[-2000:]
    assert (out / "per_prompt.csv").read_text() == before
    # the report alone reads the conditional training set back (grid and table)
    (out / "report.html").unlink()
    assert run_cli(["report", str(out), "--quiet"]).code == 0
    assert "per-prompt grid" in (out / "report.html").read_text()
    # other prompts with the same number of samples change the numbers: refused
    other = root / "other_labels.jsonl"
    other.write_text('{"label": 1, "n_samples": 3}\n{"label": 2}\n')
    argv[argv.index(str(root / "labels.jsonl"))] = str(other)
    refused = run_cli(argv)
    assert refused.code == 2 and "conditions_sha256" in refused.stderr, refused.stderr
