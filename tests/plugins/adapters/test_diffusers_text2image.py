"""diffusers-text2image on tiny pipelines built here (random weights, the Stable Diffusion
layout): every checkpoint form the training scripts write, parity with diffusers'
``StableDiffusionPipeline`` on the same initial latents, the per-(prompt, index) noise rule,
batch independence, the guidance trace, safe loading."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

diffusers = pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from probekit import Checkpoint, get_adapter  # noqa: E402
from probekit.conditions import initial_noise  # noqa: E402
from probekit.errors import InputFileError, ValidationError  # noqa: E402
from probekit.reference.text2image import (  # noqa: E402
    TinyText2ImageConfig,
    build_components,
    save_pipeline,
    write_tokenizer,
)

PROMPTS = ["alpha zulu", "bravo yankee", "alpha zulu"]


def lora_unet(unet, seed: int):
    """``unet`` with a rank-2 LoRA on the attention projections, B made non-zero (a trained
    LoRA; peft starts with B = 0)."""
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return unet


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """base/ (pipeline), full/checkpoint-10/unet, lora/checkpoint-20/ (diffusers LoRA file),
    peft/checkpoint-30/ (peft adapter folder with the same LoRA)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("t2i")
    config = TinyText2ImageConfig()
    parts = build_components(config, write_tokenizer(root / "vocab", config.max_length))
    save_pipeline(parts, root / "base")
    torch.manual_seed(5)
    full = diffusers.UNet2DConditionModel.from_config(parts["unet"].config)
    full.save_pretrained(root / "full" / "checkpoint-10" / "unet")
    lora = lora_unet(diffusers.UNet2DConditionModel.from_pretrained(root / "base" / "unet"), 7)
    peft_state = get_peft_model_state_dict(lora)
    diffusers.StableDiffusionPipeline.save_lora_weights(
        save_directory=root / "lora" / "checkpoint-20",
        unet_lora_layers=convert_state_dict_to_diffusers(peft_state))
    folder = root / "peft" / "checkpoint-30"
    lora.peft_config["default"].save_pretrained(folder)
    save_file({f"base_model.model.{k}": v.contiguous() for k, v in peft_state.items()},
              str(folder / "adapter_model.safetensors"))
    return root


def load(root, method, step, **settings):
    settings = {"base": str(root / "base"), "num_inference_steps": 3, "guidance_scale": 4.0,
                **settings}
    folder = root / "base" if step == 0 else root / method / f"checkpoint-{step}"
    return get_adapter("diffusers-text2image")(**settings).load(Checkpoint(step, folder))


def pipeline_images(root, method, step, prompts, seed, guidance=4.0, steps=3):
    """diffusers' own StableDiffusionPipeline on the same checkpoint and initial latents."""
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(root / "base", safety_checker=None,
                                                             requires_safety_checker=False)
    if method == "full":
        pipe.unet = diffusers.UNet2DConditionModel.from_pretrained(
            root / "full" / f"checkpoint-{step}" / "unet")
    elif method == "lora":
        pipe.load_lora_weights(root / "lora" / f"checkpoint-{step}")
    pipe.scheduler = diffusers.DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    latents = initial_noise((4, 8, 8), seed, prompts)
    out = pipe(prompt=list(prompts), latents=latents, num_inference_steps=steps,
               guidance_scale=guidance, output_type="np", height=16, width=16)
    return out.images.transpose(0, 3, 1, 2)


@pytest.mark.parametrize(("method", "step"), [("base", 0), ("full", 10), ("lora", 20)])
def test_images_equal_stable_diffusion_pipeline_on_the_same_latents(run, method, step):
    ours = load(run, method, step).generate(3, seed=4, conditions=PROMPTS)
    assert ours.shape == (3, 1, 16, 16) and ours.dtype == np.float32
    assert ours.min() >= 0.0 and ours.max() <= 1.0
    theirs = pipeline_images(run, method, step, PROMPTS, seed=4)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_the_checkpoint_forms_load_and_differ(run):
    handles = {m: load(run, m, s) for m, s in
               (("base", 0), ("full", 10), ("lora", 20), ("peft", 30))}
    assert handles["full"].source.startswith("full fine-tune")
    assert handles["lora"].source.startswith("LoRA") and handles["peft"].source.startswith(
        "peft adapter")
    images = {m: h.generate(2, seed=0, conditions=PROMPTS[:2]) for m, h in handles.items()}
    assert not np.allclose(images["base"], images["full"], atol=1e-3)
    assert not np.allclose(images["base"], images["lora"], atol=1e-3)
    # the peft folder holds the same LoRA as the diffusers file
    np.testing.assert_allclose(images["peft"], images["lora"], atol=2e-5)
    # LoRA layers go on a copy: the base held by the adapter is untouched
    adapter = get_adapter("diffusers-text2image")(base=str(run / "base"),
                                                  num_inference_steps=3, guidance_scale=4.0)
    adapter.load(Checkpoint(20, run / "lora" / "checkpoint-20"))
    base_again = adapter.load(Checkpoint(0, run / "base")).generate(2, seed=0,
                                                                   conditions=PROMPTS[:2])
    np.testing.assert_allclose(base_again, images["base"], atol=1e-6)
    half = load(run, "lora", 20, lora_scale=0.5).generate(2, seed=0, conditions=PROMPTS[:2])
    assert not np.allclose(half, images["lora"], atol=1e-4)


def test_mixed_format_lora_files_keep_every_layer(run, tmp_path):
    """convert_state_dict_to_diffusers writes attention layers in the old format and proj/ff
    layers in peft format; such a file gives the same images as its pure peft-format twin
    (diffusers' own loader would drop the attention layers with a RuntimeWarning)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = diffusers.UNet2DConditionModel.from_pretrained(run / "base" / "unet")
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0", "proj_in",
                                                "ff.net.2"]))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    state = get_peft_model_state_dict(unet)
    mixed = convert_state_dict_to_diffusers(state)
    assert any(".lora.down." in k for k in mixed) and any(".lora_A." in k for k in mixed)
    for name, layers in (("mixed", mixed), ("peft", state)):
        diffusers.StableDiffusionPipeline.save_lora_weights(
            save_directory=tmp_path / name / "checkpoint-5", unet_lora_layers=layers)
    images = {name: get_adapter("diffusers-text2image")(
        base=str(run / "base"), num_inference_steps=3, guidance_scale=4.0).load(
        Checkpoint(5, tmp_path / name / "checkpoint-5")).generate(2, seed=0,
                                                                  conditions=PROMPTS[:2])
        for name in ("mixed", "peft")}
    np.testing.assert_allclose(images["mixed"], images["peft"], atol=1e-6)
    attention_only = load(run, "lora", 20).generate(2, seed=0, conditions=PROMPTS[:2])
    assert not np.allclose(images["peft"], attention_only, atol=1e-3)


def test_initial_noise_is_per_prompt_and_index_at_every_checkpoint(run):
    seen = {}
    for method, step in (("base", 0), ("full", 10)):
        handle = load(run, method, step)
        inputs = []
        handle.unet.register_forward_pre_hook(lambda m, a, inputs=inputs: inputs.append(
            a[0].clone()))
        handle.generate(3, seed=9, conditions=PROMPTS)
        seen[method] = inputs[0][:3]  # first call: (conditional, null) halves
    torch.testing.assert_close(seen["base"], seen["full"], rtol=0, atol=0)
    torch.testing.assert_close(seen["base"], initial_noise((4, 8, 8), 9, PROMPTS), rtol=0,
                               atol=0)
    handle = load(run, "full", 10)
    all3 = handle.generate(3, seed=9, conditions=PROMPTS)
    # the same (prompt, index) gives the same image whatever else is sampled with it
    alone = handle.generate(1, seed=9, conditions=["bravo yankee"])
    np.testing.assert_allclose(all3[1], alone[0], atol=1e-5)
    assert not np.allclose(all3[0], all3[2], atol=1e-3)  # alpha zulu #0 and #1 differ


def test_batch_and_vae_chunking_do_not_change_samples(run):
    a = load(run, "full", 10).generate(3, seed=1, conditions=PROMPTS)
    b = load(run, "full", 10, batch_size=1, vae_batch_size=2).generate(3, seed=1,
                                                                      conditions=PROMPTS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    dpm = load(run, "full", 10, sampler="dpm-solver", num_inference_steps=4)
    c = dpm.generate(3, seed=1, conditions=PROMPTS)
    assert c.shape == a.shape and not np.allclose(a, c, atol=1e-3)
    signed = load(run, "full", 10, value_range="-1,1").generate(3, seed=1, conditions=PROMPTS)
    np.testing.assert_allclose(signed, a * 2 - 1, atol=1e-5)


def test_bfloat16_networks_on_cpu(run):
    """Memory-aware setting: bfloat16 networks (latents and scheduler steps stay float32)."""
    a = load(run, "full", 10).generate(2, seed=1, conditions=PROMPTS[:2])
    b = load(run, "full", 10, dtype="bfloat16").generate(2, seed=1, conditions=PROMPTS[:2])
    assert b.dtype == np.float32 and np.abs(a - b).max() < 0.1


def test_guidance_trace_and_predict_noise(run):
    handle = load(run, "full", 10)
    trace = handle.guidance_trace(2, PROMPTS, 2)
    assert trace.shape == (3, 2) and (trace > 0).all()
    # step 1 by hand: ||eps(x_T, c) - eps(x_T, "")|| at the first DDIM timestep
    x_t = initial_noise((4, 8, 8), 2, PROMPTS).numpy()
    scheduler = diffusers.DDIMScheduler.from_config(handle.scheduler_config)
    scheduler.set_timesteps(3)
    t = np.full(3, int(scheduler.timesteps[0]))
    cond = handle.predict_noise(x_t, t, conditions=PROMPTS)
    null = handle.predict_noise(x_t, t)
    expected = np.linalg.norm((cond - null).reshape(3, -1), axis=1)
    np.testing.assert_allclose(trace[:, 0], expected, rtol=1e-4)
    np.testing.assert_allclose(handle.guidance_trace(2, PROMPTS[::-1], 2)[[2, 1, 0]][1],
                               trace[1], rtol=1e-5)
    with pytest.raises(ValidationError, match=r"n_steps must be in \[1, 3\]"):
        handle.guidance_trace(2, PROMPTS, 4)
    with pytest.raises(ValidationError, match="latents of shape"):
        handle.predict_noise(np.zeros((2, 1, 16, 16)), np.array([10, 10]))


def test_errors_are_one_actionable_line(run, tmp_path):
    t2i = get_adapter("diffusers-text2image")
    with pytest.raises(InputFileError, match="no base pipeline") as info:
        t2i().load(Checkpoint(20, run / "lora" / "checkpoint-20"))
    assert "\n" not in str(info.value) and "base=PATH" in str(info.value)
    (tmp_path / "checkpoint-5").mkdir()
    with pytest.raises(InputFileError, match="holds no model"):
        t2i(base=str(run / "base")).load(Checkpoint(5, tmp_path / "checkpoint-5"))
    with pytest.raises(ValidationError, match="float16 needs a GPU"):
        t2i(dtype="float16")
    with pytest.raises(ValidationError, match="conditions must be given"):
        load(run, "full", 10).generate(2, seed=0)
    with pytest.raises(ValidationError, match="one condition per item"):
        load(run, "full", 10).generate(2, seed=0, conditions=["a"])
    sdxl = tmp_path / "sdxl"
    sdxl.mkdir()
    (sdxl / "model_index.json").write_text(json.dumps({"text_encoder_2": ["x", "y"]}))
    with pytest.raises(ValidationError, match="SDXL"):
        t2i(base=str(sdxl)).load(Checkpoint(20, run / "lora" / "checkpoint-20"))


class Payload:
    """Unpickling this runs code (writes a file): what weights_only=True must refuse."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_bin_weights_load_with_weights_only(run, tmp_path):
    unet = diffusers.UNet2DConditionModel.from_pretrained(run / "full" / "checkpoint-10" /
                                                          "unet")
    unet.save_pretrained(tmp_path / "checkpoint-40" / "unet", safe_serialization=False)
    assert (tmp_path / "checkpoint-40" / "unet" / "diffusion_pytorch_model.bin").is_file()
    ok = get_adapter("diffusers-text2image")(base=str(run / "base"), num_inference_steps=2,
                                            guidance_scale=4.0)
    ok.load(Checkpoint(40, tmp_path / "checkpoint-40")).generate(1, seed=0, conditions=["a"])
    marker = tmp_path / "pwned"
    evil = tmp_path / "checkpoint-50"
    (evil / "unet").mkdir(parents=True)
    (evil / "unet" / "config.json").write_text(
        (run / "full" / "checkpoint-10" / "unet" / "config.json").read_text())
    with open(evil / "unet" / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Payload(marker)}, f, protocol=2)
    with pytest.raises(OSError, match="Unable to load weights"):  # diffusers' weights_only
        ok.load(Checkpoint(50, evil))
    (evil / "pytorch_lora_weights.bin").write_bytes(pickle.dumps({"x": Payload(marker)},
                                                                 protocol=2))
    (evil / "unet" / "config.json").unlink()
    # refused in one line, never torch's advice (issue 16)
    with pytest.raises(InputFileError, match=r"refused to load .*PROBEKIT_ALLOW_PICKLE=1"):
        ok.load(Checkpoint(50, evil))
    assert not marker.exists()
