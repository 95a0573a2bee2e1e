"""probekit.conditions: readers of captioned/labelled sets, the prompts file, grouping, the
per-(prompt, index) seeding rule and the grouped nearest-neighbour search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probekit.conditions import (
    ConditionalModelHandle,
    PromptRequest,
    check_conditions,
    cluster_bootstrap_ci,
    expand_prompts,
    group_by_condition,
    grouped_neighbors,
    index_within_condition,
    initial_noise,
    load_conditional_set,
    load_prompts,
    prompts_from_conditions,
    ratio_within_conditions,
    sample_seed,
    summarize_by_condition,
)
from probekit.errors import InputFileError, ValidationError


def write_folder(folder, n=3, rows=None, size=(5, 4)):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = []
    for i in range(n):
        arr = rng.integers(0, 256, size, dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:03d}.png")
        arrays.append(arr)
    rows = rows if rows is not None else [{"file_name": f"{i:03d}.png", "text": f"caption {i}"}
                                          for i in range(n)]
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return np.stack(arrays)


def test_image_folder_with_metadata(tmp_path):
    arrays = write_folder(tmp_path / "set", rows=[
        {"file_name": "002.png", "text": "c"}, {"file_name": "000.png", "text": "a"},
        {"file_name": "001.png", "text": "b"}])
    data = load_conditional_set(tmp_path / "set")
    assert data.kind == "text" and data.conditions == ("c", "a", "b")
    assert data.names == ("002.png", "000.png", "001.png")  # metadata order, not file order
    np.testing.assert_allclose(data.images[0, 0], arrays[2] / 255.0, rtol=1e-6)
    assert data.images.shape == (3, 1, 5, 4) and data.images.dtype == np.float32


def test_folder_with_labels_and_errors(tmp_path):
    write_folder(tmp_path / "labels", rows=[{"file_name": f"{i:03d}.png", "label": i % 2}
                                            for i in range(3)])
    data = load_conditional_set(tmp_path / "labels")
    assert data.kind == "class" and data.conditions == (0, 1, 0)
    write_folder(tmp_path / "missing", rows=[{"file_name": "000.png", "text": "a"},
                                             {"file_name": "001.png", "text": "b"}])
    with pytest.raises(InputFileError, match=r"not in metadata\.jsonl \(e\.g\. '002\.png'\)"):
        load_conditional_set(tmp_path / "missing")
    write_folder(tmp_path / "typo", rows=[{"file_name": f"{i:03d}.png", "text": "x"}
                                          for i in range(3)] + [{"file_name": "9.png",
                                                                 "text": "y"}])
    with pytest.raises(InputFileError, match=r"line 4 names '9\.png'"):
        load_conditional_set(tmp_path / "typo")
    (tmp_path / "nometa").mkdir()
    with pytest.raises(InputFileError, match=r"has no metadata\.jsonl"):
        load_conditional_set(tmp_path / "nometa")
    write_folder(tmp_path / "mixed", rows=[{"file_name": "000.png", "text": "a"},
                                           {"file_name": "001.png", "text": 3},
                                           {"file_name": "002.png", "text": "c"}])
    with pytest.raises(ValidationError, match="all captions"):
        load_conditional_set(tmp_path / "mixed")


def test_npz_with_captions_or_labels(tmp_path):
    images = np.random.default_rng(0).normal(size=(4, 3, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "c.npz", images=images, captions=np.array(["a", "b", "a", "c"]))
    data = load_conditional_set(tmp_path / "c.npz")
    assert data.conditions == ("a", "b", "a", "c") and data.kind == "text"
    np.testing.assert_array_equal(data.images, images)
    np.savez(tmp_path / "l.npz", images=images, labels=np.array([3, 1, 2, 3]))
    assert load_conditional_set(tmp_path / "l.npz").conditions == (3, 1, 2, 3)
    np.savez(tmp_path / "short.npz", images=images, labels=np.array([3, 1]))
    with pytest.raises(ValidationError, match="one condition per item"):
        load_conditional_set(tmp_path / "short.npz")
    np.savez(tmp_path / "none.npz", images=images)
    with pytest.raises(InputFileError, match=r"'captions'.*or 'labels'"):
        load_conditional_set(tmp_path / "none.npz")


def test_prompts_file_text_and_jsonl(tmp_path):
    (tmp_path / "p.txt").write_text("# prompts\na red car\n\n  a blue car  \n")
    assert load_prompts(tmp_path / "p.txt", samples_per_prompt=3) == (
        PromptRequest("a red car", 3), PromptRequest("a blue car", 3))
    (tmp_path / "p.jsonl").write_text(
        '{"prompt": "a red car", "n_samples": 2}\n{"prompt": "x"}\n')
    requests = load_prompts(tmp_path / "p.jsonl", samples_per_prompt=5)
    assert requests == (PromptRequest("a red car", 2), PromptRequest("x", 5))
    assert expand_prompts(requests) == ("a red car",) * 2 + ("x",) * 5
    (tmp_path / "l.jsonl").write_text('{"label": 3, "n_samples": 2}\n{"label": 0}\n')
    assert expand_prompts(load_prompts(tmp_path / "l.jsonl")) == (3, 3, 0)
    for bad, message in [('{"prompt": "a", "label": 1}', "exactly one of"),
                         ('{"prompt": "a", "n": 2}', "unknown keys"),
                         ('{"label": -1}', "integer >= 0"),
                         ('{"prompt": "a", "n_samples": 0}', "integer >= 1"),
                         ('{"prompt": "a"}\n{"prompt": "a"}', "twice"),
                         ("not json", "line 1 is not JSON")]:
        (tmp_path / "bad.jsonl").write_text(bad + "\n")
        with pytest.raises(InputFileError, match=message):
            load_prompts(tmp_path / "bad.jsonl")
    assert prompts_from_conditions(["b", "a", "b"], 2) == (PromptRequest("b", 2),
                                                          PromptRequest("a", 2))


def test_check_conditions():
    assert check_conditions(np.array([1, 2]), 2, who="t") == (1, 2)
    assert check_conditions(np.array(["x", "y"]), who="t") == ("x", "y")
    with pytest.raises(ValidationError, match="single string"):
        check_conditions("abc", who="t")
    with pytest.raises(ValidationError, match="must be class labels"):
        check_conditions(["a"], 1, who="t", kind="class")
    with pytest.raises(ValidationError, match=">= 0"):
        check_conditions([0, -2], who="t")
    with pytest.raises(ValidationError, match=r"position 1"):
        check_conditions(["a", 1.5], who="t")


def test_grouping_and_indices():
    conds = ["a", "b", "a", "c", "b", "a"]
    groups = group_by_condition(conds)
    assert list(groups) == ["a", "b", "c"]
    np.testing.assert_array_equal(groups["a"], [0, 2, 5])
    np.testing.assert_array_equal(index_within_condition(conds), [0, 0, 1, 0, 1, 2])


def test_seed_depends_only_on_seed_condition_and_index():
    torch = pytest.importorskip("torch")
    a = initial_noise((2, 3), 7, ["x", "y", "x"])
    b = initial_noise((2, 3), 7, ["y", "x", "z", "x"])
    torch.testing.assert_close(a[0], b[1], rtol=0, atol=0)  # ("x", 0)
    torch.testing.assert_close(a[2], b[3], rtol=0, atol=0)  # ("x", 1)
    torch.testing.assert_close(a[1], b[0], rtol=0, atol=0)  # ("y", 0)
    assert not torch.equal(a[0], a[2]) and not torch.equal(a[0], initial_noise((2, 3), 8,
                                                                               ["x"])[0])
    assert sample_seed(0, "3", 0) != sample_seed(0, 3, 0)
    assert 0 <= sample_seed(2**40, "long caption " * 50, 10**6) < 2**63


def test_grouped_neighbors_match_brute_force():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(30, 5))
    ref_c = list(rng.integers(0, 4, 30))
    q = rng.normal(size=(12, 5))
    q_c = list(rng.integers(0, 5, 12))  # class 4 has no reference rows
    dist, idx = grouped_neighbors(ref, ref_c, q, q_c, 2, chunk_size=3)
    for i in range(12):
        rows = [j for j in range(30) if ref_c[j] == q_c[i]]
        if not rows:
            assert np.isnan(dist[i]).all() and (idx[i] == -1).all()
            continue
        d = np.linalg.norm(ref[rows] - q[i], axis=1)
        order = np.argsort(d, kind="stable")[:2]
        np.testing.assert_allclose(dist[i, : len(order)], d[order], rtol=1e-12)
        np.testing.assert_array_equal(idx[i, : len(order)], np.asarray(rows)[order])


def test_ratio_within_conditions_plants_a_copy():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(20, 4))
    ref_c = [i % 4 for i in range(20)]
    queries = np.stack([ref[0] + 1e-3, rng.normal(size=4), ref[5] + 1e-3])
    values, ci, per, warns = ratio_within_conditions(ref, ref_c, queries, [0, 0, 9], k=1 / 3)
    assert per["memorized_prompt"].tolist() == [True, False, False]
    assert np.isnan(per["ratio_prompt"][2]) and values["n_prompt_undefined"] == 1
    assert values["f_mem_prompt"] == 0.5 and warns and "1 of 3" in warns[0]
    assert ci["f_mem_prompt"][0] <= 0.5 <= ci["f_mem_prompt"][1]


def test_per_condition_summary_and_cluster_bootstrap():
    conds = ["a"] * 4 + ["b"] * 2
    values = np.array([1, 1, 0, 1, 0, 0], dtype=float)
    rows = summarize_by_condition(conds, values, n_bootstrap=200)
    assert [(r.condition, r.n_samples, r.value) for r in rows] == [("a", 4, 0.75), ("b", 2, 0.0)]
    assert rows[0].ci[0] <= 0.75 <= rows[0].ci[1]
    low, high = cluster_bootstrap_ci(conds, values, n_bootstrap=500, seed=1)
    # resampling whole prompts: the only possible means are 0, 0.5 (a + b), 0.75 (a only)
    assert low == 0.0 and high == 0.75


def test_handle_contract_defaults():
    class Labels(ConditionalModelHandle):
        condition_kind = "class"
        n_classes = 3
        step = 0

        def generate(self, n, seed, *, conditions=None):
            return np.zeros((n, 1, 2, 2))

    handle = Labels()
    drawn = handle.resolve_conditions(6, 5, None)
    assert drawn == handle.resolve_conditions(6, 5, None) and set(drawn) <= {0, 1, 2}
    with pytest.raises(ValidationError, match=r"\[0, 2\]"):
        handle.resolve_conditions(1, 0, [3])
    with pytest.raises(NotImplementedError, match="noise-magnitude"):
        handle.guidance_trace(0, [0], 1)
