"""sscd: the SSCD README's preprocessing and L2 normalization, on a TorchScript model of the
release's interface (image batch -> descriptor) scripted here with random weights, and on the
release's torchvision state-dict format; weights come only from a file the user names."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

from probekit import get_feature_extractor  # noqa: E402
from probekit.errors import InputFileError, MissingResourceError, ValidationError  # noqa: E402
from probekit.testing import check_extractor, conformance_data  # noqa: E402


class TinySSCD(torch.nn.Module):
    """SSCD's shape: a conv trunk, GeM pooling (p = 3), a linear projection, L2 normalization."""

    def __init__(self, dim: int = 16):
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 12, 3, stride=2, padding=1), torch.nn.ReLU())
        self.proj = torch.nn.Linear(12, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.trunk(x).clamp(min=1e-6).pow(3.0).mean(dim=(2, 3)).pow(1.0 / 3.0)
        return torch.nn.functional.normalize(self.proj(feats), dim=1)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sscd") / "sscd_tiny.torchscript.pt"
    script(TinySSCD().eval(), path)
    return path


def script(module, path):
    """Save ``module`` as TorchScript, the release's format (deprecated by torch 2.10+)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(module).save(str(path))


def load_script(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path)).eval()


def images(n=5, h=40, w=56, seed=0):
    """Smooth random uint8 RGB images (not square, so the shorter side matters)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (n, 3, h // 8, w // 8))
    big = np.kron(small, np.ones((1, 1, 8, 8)))
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


# The README's recipes, written out as the README states them.
NORMALIZE = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
README = {
    "sscd-resize288": transforms.Compose([transforms.Resize(288), transforms.ToTensor(),
                                          NORMALIZE]),
    "sscd-skew320": transforms.Compose([transforms.Resize([320, 320]), transforms.ToTensor(),
                                        NORMALIZE]),
}


@pytest.mark.parametrize("recipe", ["sscd-resize288", "sscd-skew320"])
def test_features_match_the_readme_pipeline_on_the_scripted_model(scripted, recipe):
    x8 = images()
    model = load_script(scripted)
    with torch.no_grad():
        batch = torch.stack([README[recipe](Image.fromarray(a.transpose(1, 2, 0))) for a in x8])
        upstream = model(batch).numpy()
    ours = get_feature_extractor("sscd")(weights=str(scripted), preprocessing=recipe).extract(
        x8.astype(np.float32) / 255.0)
    assert ours.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-12)
    # PIL resizes 8-bit images and rounds; we resize floats: the same descriptor to 1e-3
    cos = (ours * upstream).sum(1) / np.linalg.norm(upstream, axis=1)
    assert cos.min() > 0.999, cos


def test_value_range_grayscale_and_l2_normalization(scripted, tmp_path):
    x8 = images(n=3)
    gray = x8[:, :1].astype(np.float32) / 255.0
    sscd = get_feature_extractor("sscd")
    unit = sscd(weights=str(scripted)).extract(gray)
    signed = sscd(weights=str(scripted), value_range="-1,1").extract(gray * 2 - 1)
    np.testing.assert_allclose(signed, unit, atol=1e-6)
    rgb = sscd(weights=str(scripted)).extract(np.repeat(gray, 3, axis=1))
    np.testing.assert_allclose(rgb, unit, atol=1e-6)  # grayscale replicated to RGB

    class Unnormalized(torch.nn.Module):  # a model that does not normalize: we still do
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 3.0 * x.mean(dim=(2, 3))

    path = tmp_path / "raw.torchscript.pt"
    script(Unnormalized(), path)
    feats = sscd(weights=str(path)).extract(gray)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-12)


def test_torchvision_state_dict_format_matches_its_torchscript_export(tmp_path):
    """A ``*.torchvision.pt`` state dict (read with weights_only=True, no code run) gives the
    same descriptors as the same network exported as TorchScript."""
    from probekit_plugins.features.sscd import build_torchvision_sscd

    torch.manual_seed(1)
    net = build_torchvision_sscd("resnet18", 24).eval()
    state_path = tmp_path / "sscd_tiny.torchvision.pt"
    torch.save(dict(net.state_dict()), state_path)
    script_path = tmp_path / "sscd_tiny.torchscript.pt"
    script(net, script_path)
    x = images(n=3, h=48, w=48).astype(np.float32) / 255
    sscd = get_feature_extractor("sscd")
    from_state = sscd(weights=str(state_path), backbone="resnet18").extract(x)
    from_script = sscd(weights=str(script_path)).extract(x)
    assert from_state.shape == (3, 24)
    np.testing.assert_allclose(from_state, from_script, atol=1e-5)
    with pytest.raises(ValidationError, match="backbone"):
        sscd(weights=str(state_path), backbone="resnet50").extract(x)


def test_provenance_records_the_file_hash_and_recipe(scripted):
    import hashlib

    extractor = get_feature_extractor("sscd")(weights=str(scripted), preprocessing="sscd-skew320")
    assert extractor.weights_sha256 == hashlib.sha256(scripted.read_bytes()).hexdigest()
    assert extractor.preprocessing == "sscd-skew320"
    assert extractor.provenance_extra()["sscd_weights_file"] == scripted.name


def test_missing_or_unnamed_weights_is_one_actionable_line(tmp_path, monkeypatch):
    monkeypatch.delenv("PROBEKIT_SSCD_WEIGHTS", raising=False)
    sscd = get_feature_extractor("sscd")
    x = images(n=1).astype(np.float32) / 255
    with pytest.raises(MissingResourceError, match=r"sscd_disc_mixup\.torchscript\.pt") as info:
        sscd().extract(x)
    assert "\n" not in str(info.value) and "never downloads" in str(info.value)
    with pytest.raises(MissingResourceError, match="does not exist"):
        sscd(weights=str(tmp_path / "nope.pt")).extract(x)
    monkeypatch.setenv("PROBEKIT_SSCD_WEIGHTS", str(tmp_path / "env.pt"))
    with pytest.raises(MissingResourceError, match="PROBEKIT_SSCD_WEIGHTS"):
        sscd().extract(x)
    not_script = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, not_script)
    with pytest.raises(InputFileError, match="not a TorchScript model"):
        sscd(weights=str(not_script)).extract(x)


def test_conformance(scripted):
    check_extractor("sscd", settings={"weights": str(scripted)},
                    data=conformance_data("image", n=12))
