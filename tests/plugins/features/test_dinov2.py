"""dinov2: timm's DINOv2 ViT-S/14 with random weights saved to a file here, loaded through the
extractor, against timm's own forward on the DINOv2 evaluation transform (PIL), and against
timm's own loading of a 518-pixel checkpoint (position embeddings resampled to 224)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
safetensors_torch = pytest.importorskip("safetensors.torch")

from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

from probekit import get_feature_extractor  # noqa: E402
from probekit.errors import MissingResourceError, ValidationError  # noqa: E402
from probekit.testing import check_extractor, conformance_data  # noqa: E402

pytestmark = pytest.mark.slow  # a ViT-S/14 on the CPU: about 20 s on an idle machine

ARCH = "vit_small_patch14_dinov2"
#: The DINOv2 repository's evaluation transform, written out.
DINOV2_EVAL = transforms.Compose([
    transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
])


def images(n=3, h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (n, 3, h // 8, w // 8))
    big = np.kron(small, np.ones((1, 1, 8, 8)))
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    net = timm.create_model(ARCH, pretrained=False, num_classes=0, img_size=224).eval()
    path = tmp_path_factory.mktemp("dinov2") / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                                str(path))
    return net, path


def test_features_match_timm_on_the_dinov2_eval_transform(weights):
    net, path = weights
    x8 = images(n=2)
    with torch.no_grad():
        batch = torch.stack([DINOV2_EVAL(Image.fromarray(a.transpose(1, 2, 0))) for a in x8])
        upstream = net(batch).double().numpy()
    extractor = get_feature_extractor("dinov2")(weights=str(path))
    ours = extractor.extract(x8.astype(np.float32) / 255.0)
    assert ours.shape == (2, 384) and extractor.preprocessing == "dinov2-224"
    cos = (ours * upstream).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(upstream, axis=1)
    assert cos.min() > 0.999, cos  # PIL's 8-bit resize vs our float resize


def test_a_518_pixel_checkpoint_loads_like_timm_loads_it(tmp_path):
    torch.manual_seed(1)
    full = timm.create_model(ARCH, pretrained=False, num_classes=0).eval()  # 518 x 518
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in full.state_dict().items()},
                                str(path))
    reference = timm.create_model(ARCH, pretrained=True, num_classes=0, img_size=224,
                                  pretrained_cfg_overlay={"file": str(path)}).eval()
    x = images(n=2).astype(np.float32) / 255.0
    from probekit_plugins.features.dinov2 import RECIPE

    from probekit.pretrained import preprocess

    with torch.no_grad():
        expected = reference(preprocess(x, RECIPE, (0.0, 1.0), "test")).double().numpy()
    ours = get_feature_extractor("dinov2")(weights=str(path)).extract(x)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_wrong_architecture_and_missing_file(weights, tmp_path, monkeypatch):
    _, path = weights
    monkeypatch.delenv("PROBEKIT_DINOV2_WEIGHTS", raising=False)
    dinov2 = get_feature_extractor("dinov2")
    x = images(n=1).astype(np.float32) / 255.0
    with pytest.raises(ValidationError, match="do not fit architecture='vit_base_patch14"):
        dinov2(weights=str(path), architecture="vit_base_patch14_dinov2").extract(x)
    with pytest.raises(ValidationError, match="DINOv2 architecture"):
        dinov2(architecture="resnet50")
    with pytest.raises(MissingResourceError, match="PROBEKIT_DINOV2_WEIGHTS") as info:
        dinov2().extract(x)
    assert "\n" not in str(info.value)
    assert dinov2(weights=str(path)).weights_sha256 == __import__("hashlib").sha256(
        path.read_bytes()).hexdigest()


def test_conformance(weights):
    _, path = weights
    check_extractor("dinov2", settings={"weights": str(path)},
                    data=conformance_data("image", n=4))
