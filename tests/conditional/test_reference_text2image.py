"""probekit.reference.text2image writes what diffusers' training scripts write, reuses a
finished build, and rebuilds an interrupted one (a micro configuration: seconds)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from probekit.reference.text2image import TinyText2ImageConfig, build_runs, write_tokenizer

MICRO = replace(TinyText2ImageConfig(), n_pool=64, n_holdout=16, vae_steps=2, base_steps=2,
                checkpoints=(1, 2), lora_checkpoints=(1, 2))


def test_layout_of_the_scripts_and_reuse(tmp_path):
    runs = build_runs(tmp_path, MICRO)
    assert (runs.base / "model_index.json").is_file()
    for step in (1, 2):
        assert (runs.full / f"checkpoint-{step}" / "unet" / "config.json").is_file()
        assert (runs.lora / f"checkpoint-{step}" / "pytorch_lora_weights.safetensors").is_file()
    assert (runs.full / "model_index.json").is_file()  # the final pipeline
    assert (runs.lora / "pytorch_lora_weights.safetensors").is_file()  # the final LoRA
    assert runs.steps == runs.steps_of("lora") == (0, 1, 2)
    assert runs.checkpoint("lora", 0) == runs.base
    assert runs.train.shape == (8, 1, 16, 16) and 0 <= runs.train.min() <= runs.train.max() <= 1
    assert len(set(runs.captions)) == 8 and not set(runs.captions) & set(runs.unseen_captions)
    assert {"base", "full", "lora", "base_cpu"} <= set(runs.seconds)
    again = build_runs(tmp_path, MICRO)
    assert again.seconds == {} and again.base == runs.base  # reused
    done = runs.base.parent / "done.json"
    assert json.loads(done.read_text())["config"]["checkpoints"] == [1, 2]
    done.unlink()  # as if the build had been interrupted
    assert "lora" in build_runs(tmp_path, MICRO).seconds  # rebuilt


def test_tokenizer_knows_the_caption_words(tmp_path):
    tok = write_tokenizer(tmp_path, 12)
    pieces = tok.convert_ids_to_tokens(tok("alpha zulu a handwritten digit seven").input_ids)
    assert pieces[1:-1] == ["alpha</w>", "zulu</w>", "a</w>", "handwritten</w>", "digit</w>",
                            "seven</w>"]
    ids = tok(["x"], padding="max_length", max_length=12).input_ids
    assert np.asarray(ids).shape == (1, 12)
