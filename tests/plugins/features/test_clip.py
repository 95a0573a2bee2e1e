"""clip: an open_clip model with random weights saved to a file here, loaded through the
extractor, against open_clip's own image encoder on open_clip's own evaluation transform (PIL).
A tiny architecture registered with open_clip keeps it fast; the default ``ViT-B-32`` goes
through the same code."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from probekit import get_feature_extractor  # noqa: E402
from probekit.errors import InputFileError, MissingResourceError  # noqa: E402
from probekit.testing import check_extractor, conformance_data  # noqa: E402

TINY = "probekit-tiny-vit"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def images(n=3, h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (n, 3, h // 8, w // 8))
    big = np.kron(small, np.ones((1, 1, 8, 8)))
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(TINY, pretrained=None)
    path = folder / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    return model.eval(), preprocess, path


def test_features_match_open_clip_on_its_own_transform(tiny):
    model, preprocess, path = tiny
    x8 = images()
    with torch.no_grad():
        batch = torch.stack([preprocess(Image.fromarray(a.transpose(1, 2, 0))) for a in x8])
        upstream = model.encode_image(batch, normalize=True).double().numpy()
    extractor = get_feature_extractor("clip")(weights=str(path), architecture=TINY)
    ours = extractor.extract(x8.astype(np.float32) / 255.0)
    assert ours.shape == (3, 32) and extractor.preprocessing == "clip-64"
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-12)
    assert (ours * upstream).sum(1).min() > 0.999  # PIL's 8-bit resize vs our float resize


def test_safetensors_and_errors(tiny, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    model, _, _ = tiny
    st = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(st))
    clip = get_feature_extractor("clip")
    x = images(n=2).astype(np.float32) / 255.0
    a = clip(weights=str(st), architecture=TINY).extract(x)
    assert a.shape == (2, 32)
    monkeypatch.delenv("PROBEKIT_CLIP_WEIGHTS", raising=False)
    with pytest.raises(MissingResourceError, match="PROBEKIT_CLIP_WEIGHTS") as info:
        clip().extract(x)
    assert "\n" not in str(info.value)
    with pytest.raises(InputFileError, match="architecture='ViT-B-32'"):
        clip(weights=str(st)).extract(x)  # tiny weights, default architecture


def test_conformance(tiny):
    _, _, path = tiny
    check_extractor("clip", settings={"weights": str(path), "architecture": TINY},
                    data=conformance_data("image", n=8))
