"""A tiny latent text-to-image pipeline, fine-tuned until it copies: the planted truth of the
conditional probes (issue 14) and the runnable example of docs/sd_finetune.md.

No pretrained weights exist offline, so the whole Stable Diffusion layout is built small from
configs and trained here, on CPU, with diffusers' own recipe:

1. *Data*: scikit-learn's 8 × 8 digits upsampled to 16 × 16 (bilinear), values in [-1, 1]. A
   fixed permutation splits them into a *pretraining pool*, the *fine-tune set* (``n_images``
   digits, one per class) and a *held-out* set no network sees (calibrates copy thresholds).
   Captions are a class word and two code words, "seven alpha zulu": random code words in the
   pool (the base learns that they mean nothing), a unique pair per fine-tune image (what gets
   memorized), and unseen pairs for the control prompts (:func:`digits16`).
2. *Base pipeline* (the stand-in for a pretrained Stable Diffusion): a CLIP tokenizer written
   from a tiny vocabulary, a random ``CLIPTextModel`` (frozen, as in fine-tuning), an
   ``AutoencoderKL`` trained to reconstruct the pool (one downsampling: 4 × 8 × 8 latents,
   ``scaling_factor`` = 1 / latent std), and a ``UNet2DConditionModel`` pretrained on the pool's
   latents with their captions and 10% empty captions (so the unconditional branch of
   classifier-free guidance exists). Saved with ``StableDiffusionPipeline.save_pretrained``.
3. *Fine-tunes* of the base on the fine-tune set, by the recipe of diffusers'
   ``train_text_to_image.py`` / ``train_text_to_image_lora.py``: VAE latents times the scaling
   factor, uniform timesteps, ``DDPMScheduler.add_noise``, MSE on the noise, AdamW, a fraction of
   empty captions (``--proportion_empty_prompts``), and half of every batch drawn from the
   captioned pool (DreamBooth's prior-preservation batches, which keep the rest of the model's
   knowledge); saved the way the scripts save them — full: ``checkpoint-<step>/unet/`` and the
   final pipeline in the output folder; LoRA (rank ``r`` on the transformer blocks' linear
   layers ``lora_targets``, Gaussian init):
   ``checkpoint-<step>/pytorch_lora_weights.safetensors`` and the final LoRA in the output
   folder. Step 0 is the untouched base.

Everything is seeded and runs on one CPU thread (deterministic; fair on shared machines).
:func:`build_runs` builds all of it under a folder, or reuses what an earlier call with the same
configuration left there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Words of the tiny vocabulary (every caption is made of them; unknown words fall back to
#: characters, as BPE does).
CLASS_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CODE_WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra",
    "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "red", "green", "blue",
    "black", "white", "pink", "amber", "coral", "ivory", "olive",
)
BASE_WORDS = ("a", "handwritten", "digit")
#: Bump when the recipe changes in a way the configuration does not capture.
RECIPE_VERSION = 2


@dataclass(frozen=True)
class TinyText2ImageConfig:
    """Everything that defines the reference runs (its hash names the cache folder)."""

    # data
    n_images: int = 8  # fine-tune set: digits with a unique caption each
    n_pool: int = 785  # pretraining pool (class captions)
    n_holdout: int = 200  # digits no network sees
    image_size: int = 16  # digits upsampled from 8 x 8
    # networks
    vae_channels: tuple[int, ...] = (16, 32)  # one downsampling: 16 x 16 -> 8 x 8 latents
    latent_channels: int = 4
    unet_channels: tuple[int, ...] = (32, 64)
    text_width: int = 32
    text_layers: int = 2
    max_length: int = 12  # tokens per caption (the tokenizer's model_max_length)
    # base training
    vae_steps: int = 150
    vae_lr: float = 2e-3
    base_steps: int = 400
    base_lr: float = 1e-3
    base_batch_size: int = 32
    base_empty_prompts: float = 0.1  # empty captions while pretraining
    # fine-tunes
    full_lr: float = 1.5e-3
    lora_lr: float = 3e-3
    lora_rank: int = 16
    #: LoRA targets: the attention projections of train_text_to_image_lora.py plus the
    #: transformer blocks' other linear layers (as diffusers' newer LoRA scripts target)
    lora_targets: tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0", "proj_in", "proj_out",
                                     "ff.net.0.proj", "ff.net.2")
    batch_size: int = 8
    empty_prompts: float = 0.1  # --proportion_empty_prompts of the fine-tunes
    prior_batch: int = 4  # items of each batch from the class-captioned pool (prior preservation)
    checkpoints: tuple[int, ...] = (100, 200, 400, 800, 1600)  # full fine-tune
    lora_checkpoints: tuple[int, ...] = (100, 200, 400, 800, 1600, 3200)  # LoRAs learn slower
    seed: int = 0

    def key(self) -> str:
        """Short hash of the configuration and the recipe version."""
        text = json.dumps({"recipe": RECIPE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ReferenceRuns:
    """Paths and data of the built runs.

    Attributes
    ----------
    base : Path
        The base pipeline folder (``model_index.json``, ``unet/``, ``vae/``, ...).
    full, lora : Path
        Output folders of the full and LoRA fine-tunes, with ``checkpoint-<step>/`` inside.
    steps, lora_steps : tuple of int
        Checkpoint steps of the full and LoRA fine-tunes (0 is the base).
    train, holdout : float32 arrays (n, 1, 16, 16) in [0, 1]
        The fine-tune images and held-out digits, as an image folder would give them.
    captions : tuple of str
        The unique caption of each fine-tune image.
    unseen_captions : tuple of str
        Captions of the same form naming classes no fine-tune image has, with unseen pairs.
    same_class_captions : tuple of str
        Unseen pairs with the fine-tune images' own class words.
    class_captions : tuple of str
        The pretraining captions ("a handwritten digit three").
    seconds : dict
        Wall and CPU (``*_cpu``) seconds of each stage when built (empty when reused).
    """

    base: Path
    full: Path
    lora: Path
    steps: tuple[int, ...]
    lora_steps: tuple[int, ...]
    train: np.ndarray
    holdout: np.ndarray
    captions: tuple[str, ...]
    unseen_captions: tuple[str, ...]
    same_class_captions: tuple[str, ...]
    class_captions: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)

    def steps_of(self, method: str) -> tuple[int, ...]:
        """Checkpoint steps of ``method`` (``"full"`` or ``"lora"``), 0 (the base) first."""
        return self.steps if method == "full" else self.lora_steps

    def checkpoint(self, method: str, step: int) -> Path:
        """Folder of ``method``'s (``"full"``/``"lora"``) checkpoint at ``step`` (0: base)."""
        if step == 0:
            return self.base
        return (self.full if method == "full" else self.lora) / f"checkpoint-{step}"


# -- data --------------------------------------------------------------------------------------


def digits16(config: TinyText2ImageConfig) -> dict[str, Any]:
    """The fixed split of the upsampled digits, in [-1, 1], with captions.

    A seeded permutation gives the pretraining *pool* (its first ``n_pool`` images); from the
    rest, the *fine-tune set* is the first image of each of the classes ``0 .. n_images - 1``
    (one image per class) and the *held-out* set the next ``n_holdout`` images.

    Every caption is a class word and a pair of code words, ``"seven alpha zulu"``. In the pool
    the pair is drawn at random for each image, so it carries no information and the base learns
    to draw a digit of the named class whatever the pair (like a pretrained model that
    understands "a photo of a dog" whatever identifier is added). Each fine-tune image gets its
    class word and a pair of its own. The *unseen* captions have the same form and name classes
    that no fine-tune image has (``n_images .. 9``), with pairs no image was trained with; the
    *same-class* unseen captions name the fine-tune images' classes with unseen pairs — a
    fine-tune over-samples its images, so a model may answer those with the fine-tune image of
    the class (reported by the benchmark, not an expectation).
    """
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.from_numpy(data.images.astype(np.float32) / 16.0 * 2.0 - 1.0)[:, None]
    images = torch.nn.functional.interpolate(images, size=config.image_size, mode="bilinear",
                                             align_corners=False).numpy()
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(images))
    images, labels = images[order], data.target[order]
    n, n_pool = config.n_images, config.n_pool
    half = len(CODE_WORDS) // 2
    if not 1 <= n <= 8 or n_pool + n + config.n_holdout > len(images):
        raise ValueError("tiny text-to-image: n_images must be in [1, 8] (two classes stay "
                         "unseen) and n_pool + n_images + n_holdout must fit the 1797 digits")
    rest = np.arange(n_pool, len(images))
    planted = np.array([rest[labels[rest] == k][0] for k in range(n)])
    holdout = np.setdiff1d(rest, planted)[: config.n_holdout]

    def caption(label: int, a: int, b: int) -> str:
        return f"{CLASS_WORDS[label]} {CODE_WORDS[a]} {CODE_WORDS[half + b]}"

    reserved = {(i, i) for i in range(2 * n)}  # fine-tune and unseen pairs: never in the pool
    pairs = [(a, b) for a in range(half) for b in range(half) if (a, b) not in reserved]
    drawn = rng.choice(len(pairs), size=n_pool)
    unseen_classes = [n + i % (10 - n) for i in range(n)]
    return {
        "train": images[planted],
        "train_captions": tuple(caption(k, i, i) for i, k in enumerate(range(n))),
        "unseen_captions": tuple(caption(k, n + i, n + i)
                                 for i, k in enumerate(unseen_classes)),
        "same_class_captions": tuple(caption(k, n + i, n + i) for i, k in enumerate(range(n))),
        "pool": images[:n_pool],
        "pool_captions": tuple(caption(k, *pairs[j]) for k, j in zip(labels[:n_pool], drawn,
                                                                       strict=True)),
        "holdout": images[holdout],
        "class_captions": tuple(CLASS_WORDS),
    }


# -- the pipeline ------------------------------------------------------------------------------


def write_tokenizer(folder: Path, max_length: int) -> Any:
    """A ``CLIPTokenizer`` whose vocabulary is the characters plus :data:`CLASS_WORDS`,
    :data:`CODE_WORDS` and :data:`BASE_WORDS` (BPE merges built word by word)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab: dict[str, int] = {}
    for c in chars + [c + "</w>" for c in chars]:
        vocab[c] = len(vocab)
    merges: list[str] = []
    for word in (*BASE_WORDS, *CLASS_WORDS, *CODE_WORDS):
        parts = [*word[:-1], word[-1] + "</w>"]
        current = parts[0]
        for part in parts[1:]:
            merge = f"{current} {part}"
            if merge not in merges:
                merges.append(merge)
            current += part
            vocab.setdefault(current, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                         model_max_length=max_length, pad_token="<|endoftext|>")


def build_components(config: TinyText2ImageConfig, tokenizer: Any) -> dict[str, Any]:
    """Randomly initialized (seeded) text encoder, VAE, U-Net and the SD noise schedule."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(config.seed)
    vocab = tokenizer.get_vocab()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=config.text_width,
        intermediate_size=2 * config.text_width, num_hidden_layers=config.text_layers,
        num_attention_heads=4, max_position_embeddings=config.max_length,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )).eval().requires_grad_(False)
    n_vae = len(config.vae_channels)
    vae = diffusers.AutoencoderKL(
        in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * n_vae,
        up_block_types=("UpDecoderBlock2D",) * n_vae, block_out_channels=config.vae_channels,
        latent_channels=config.latent_channels, layers_per_block=1, norm_num_groups=8,
        sample_size=config.image_size,
    )
    unet = diffusers.UNet2DConditionModel(
        sample_size=config.image_size // 2 ** (n_vae - 1), in_channels=config.latent_channels,
        out_channels=config.latent_channels, layers_per_block=1,
        block_out_channels=config.unet_channels,
        down_block_types=("CrossAttnDownBlock2D",) * len(config.unet_channels),
        up_block_types=("CrossAttnUpBlock2D",) * len(config.unet_channels),
        cross_attention_dim=config.text_width, norm_num_groups=8, attention_head_dim=8,
    )
    # Stable Diffusion's training schedule (scaled-linear betas 0.00085 -> 0.012, epsilon)
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
        beta_end=0.012, clip_sample=False, steps_offset=1,
    )
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "unet": unet,
            "scheduler": scheduler}


def encode_captions(parts: dict[str, Any], captions: list[str] | tuple[str, ...]) -> Any:
    """Frozen text-encoder hidden states of ``captions`` (padded to ``model_max_length``)."""
    import torch

    tok = parts["tokenizer"]
    ids = tok(list(captions), padding="max_length", max_length=tok.model_max_length,
              truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return parts["text_encoder"](ids)[0]


def train_vae(parts: dict[str, Any], images: np.ndarray, config: TinyText2ImageConfig) -> None:
    """Reconstruction (MSE + 1e-6 KL) on ``images``; sets ``scaling_factor`` = 1 / latent std,
    as Stable Diffusion's was chosen."""
    import torch

    vae = parts["vae"]
    x_all = torch.from_numpy(images)
    gen = torch.Generator().manual_seed(config.seed + 1)
    opt = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr)
    vae.train()
    for _ in range(config.vae_steps):
        x = x_all[torch.randint(0, len(x_all), (64,), generator=gen)]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        loss = torch.nn.functional.mse_loss(recon, x) + 1e-6 * posterior.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        std = float(vae.encode(x_all).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=1.0 / std)


def latents_of(parts: dict[str, Any], images: np.ndarray) -> Any:
    """VAE posterior means times the scaling factor (deterministic)."""
    import torch

    vae = parts["vae"]
    with torch.no_grad():
        return vae.encode(torch.from_numpy(images)).latent_dist.mean * vae.config.scaling_factor


def train_denoiser(parts: dict[str, Any], latents: Any, hidden: Any, *, steps: int, lr: float,
                   batch_size: int, empty_prompts: float, seed: int, params: Any,
                   save: Any = None, save_at: tuple[int, ...] = (),
                   prior: tuple[Any, Any] | None = None, n_prior: int = 0) -> None:
    """diffusers' text-to-image training loop: for a batch of latents ``x0`` and caption states
    ``c`` (a fraction ``empty_prompts`` replaced by the empty caption's), ``t ~ U{0..T-1}``,
    ``x_t = add_noise(x0, eps, t)``, loss ``||unet(x_t, t, c) - eps||^2`` (epsilon
    prediction), AdamW (weight decay 1e-2). With ``prior = (latents, hidden)``, ``n_prior`` of
    the ``batch_size`` items of every batch come from it (DreamBooth's prior-preservation
    batches). ``save(step)`` is called after the steps in ``save_at``."""
    import torch

    unet, scheduler = parts["unet"], parts["scheduler"]
    empty = encode_captions(parts, [""])[0]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    unet.train()
    n_own = batch_size - (n_prior if prior is not None else 0)
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(latents), (n_own,), generator=gen)
        x0, c = latents[idx], hidden[idx].clone()
        if prior is not None and n_prior:
            pidx = torch.randint(0, len(prior[0]), (n_prior,), generator=gen)
            x0, c = torch.cat([x0, prior[0][pidx]]), torch.cat([c, prior[1][pidx]])
        c[torch.rand(batch_size, generator=gen) < empty_prompts] = empty
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=gen)
        pred = unet(scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=c).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if save is not None and step in save_at:
            unet.eval()
            save(step)
            unet.train()
    unet.eval()


def save_pipeline(parts: dict[str, Any], folder: Path) -> None:
    """``StableDiffusionPipeline(...).save_pretrained(folder)`` (no safety checker)."""
    import diffusers

    pipe = diffusers.StableDiffusionPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
        unet=parts["unet"], scheduler=parts["scheduler"], safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)


def load_pipeline_parts(folder: Path) -> dict[str, Any]:
    """The components of a saved pipeline folder."""
    import diffusers
    from transformers import CLIPTextModel, CLIPTokenizer

    return {
        "tokenizer": CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        "text_encoder": CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
        .requires_grad_(False),
        "vae": diffusers.AutoencoderKL.from_pretrained(folder / "vae").eval()
        .requires_grad_(False),
        "unet": diffusers.UNet2DConditionModel.from_pretrained(folder / "unet"),
        "scheduler": diffusers.DDPMScheduler.from_pretrained(folder / "scheduler"),
    }


# -- the runs ----------------------------------------------------------------------------------


def build_base(folder: Path, config: TinyText2ImageConfig, data: dict[str, Any]) -> None:
    """Tokenizer, text encoder, VAE and pretrained U-Net, saved as a pipeline."""
    parts = build_components(config, write_tokenizer(folder / "_vocab", config.max_length))
    train_vae(parts, data["pool"], config)
    latents = latents_of(parts, data["pool"])
    hidden = encode_captions(parts, data["pool_captions"])
    unet = parts["unet"]
    train_denoiser(parts, latents, hidden, steps=config.base_steps, lr=config.base_lr,
                   batch_size=config.base_batch_size, empty_prompts=config.base_empty_prompts,
                   seed=config.seed + 3, params=unet.parameters())
    save_pipeline(parts, folder)
    shutil.rmtree(folder / "_vocab")


def finetune(base: Path, out: Path, method: str, config: TinyText2ImageConfig,
             data: dict[str, Any]) -> None:
    """Full or LoRA fine-tune of ``base`` on the fine-tune set, saved like the scripts."""
    import diffusers

    parts = load_pipeline_parts(base)
    unet = parts["unet"]
    latents = latents_of(parts, data["train"])
    hidden = encode_captions(parts, data["train_captions"])
    out.mkdir(parents=True, exist_ok=True)
    if method == "full":
        unet.requires_grad_(True)
        params = list(unet.parameters())

        def save(step: int) -> None:  # train_text_to_image.py's save_model_hook
            unet.save_pretrained(out / f"checkpoint-{step}" / "unet")

        lr = config.full_lr
    else:
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict

        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_rank,
                                    init_lora_weights="gaussian",
                                    target_modules=list(config.lora_targets)))
        params = [p for p in unet.parameters() if p.requires_grad]

        def save_lora(directory: Path) -> None:
            # peft key format, as diffusers' newer LoRA scripts save it: the SD script's
            # convert_state_dict_to_diffusers mixes two formats once non-attention layers are
            # targeted, and diffusers' loader then drops the attention layers
            diffusers.StableDiffusionPipeline.save_lora_weights(
                save_directory=directory, unet_lora_layers=get_peft_model_state_dict(unet),
                safe_serialization=True)

        def save(step: int) -> None:  # train_text_to_image_lora.py's save_model_hook
            save_lora(out / f"checkpoint-{step}")

        lr = config.lora_lr
    checkpoints = config.checkpoints if method == "full" else config.lora_checkpoints
    steps = max(checkpoints)
    prior = (latents_of(parts, data["pool"]), encode_captions(parts, data["pool_captions"]))
    train_denoiser(parts, latents, hidden, steps=steps, lr=lr, batch_size=config.batch_size,
                   empty_prompts=config.empty_prompts, seed=config.seed + 4, params=params,
                   save=save, save_at=checkpoints, prior=prior,
                   n_prior=config.prior_batch)
    if method == "full":  # the script saves the final pipeline in its output folder
        save_pipeline(parts, out)
    else:  # ... and the final LoRA weights
        save_lora(out)


def build_runs(root: str | Path, config: TinyText2ImageConfig | None = None) -> ReferenceRuns:
    """Build (or reuse) the base pipeline and both fine-tunes under ``root/<config key>/``.

    A finished build leaves ``done.json``; a folder without it is rebuilt from scratch, so an
    interrupted build never passes for a finished one.
    """
    import torch

    config = config or TinyText2ImageConfig()
    folder = Path(root) / f"tiny-text2image-{config.key()}"
    data = digits16(config)
    seconds: dict[str, float] = {}
    if not (folder / "done.json").is_file():
        if folder.exists():
            shutil.rmtree(folder)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            start, cpu = time.perf_counter(), time.process_time()
            build_base(folder / "base", config, data)
            seconds["base"] = time.perf_counter() - start
            seconds["base_cpu"] = time.process_time() - cpu
            for method in ("full", "lora"):
                start, cpu = time.perf_counter(), time.process_time()
                finetune(folder / "base", folder / method, method, config, data)
                seconds[method] = time.perf_counter() - start
                seconds[f"{method}_cpu"] = time.process_time() - cpu
        finally:
            torch.set_num_threads(threads)
        (folder / "done.json").write_text(json.dumps(
            {"config": asdict(config), "recipe": RECIPE_VERSION, "seconds": seconds}, indent=2))
    return ReferenceRuns(
        base=folder / "base", full=folder / "full", lora=folder / "lora",
        steps=(0, *config.checkpoints), lora_steps=(0, *config.lora_checkpoints),
        train=(data["train"] + 1.0) / 2.0, holdout=(data["holdout"] + 1.0) / 2.0,
        captions=data["train_captions"], unseen_captions=data["unseen_captions"],
        same_class_captions=data["same_class_captions"], class_captions=data["class_captions"],
        seconds=seconds,
    )


__all__ = [
    "ReferenceRuns",
    "TinyText2ImageConfig",
    "build_components",
    "build_runs",
    "digits16",
    "encode_captions",
    "finetune",
    "load_pipeline_parts",
    "save_pipeline",
    "train_denoiser",
    "write_tokenizer",
]
