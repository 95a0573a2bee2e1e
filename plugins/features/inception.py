"""``inception``: pytorch-fid's InceptionV3 pool3 features (2048-d), from local weights only.

The network is pytorch-fid's own ``InceptionV3`` (resize to 299×299 bilinear, scale to
[-1, 1], FID-patched blocks), so the features are the ones ``python -m pytorch_fid`` computes.
The weights file ``pt_inception-2015-12-05-6726825d.pth`` is looked up, in this order, at the
``weights`` setting, the ``PROBEKIT_INCEPTION_WEIGHTS`` environment variable, and the torch hub
cache ``<TORCH_HOME or ~/.cache/torch>/hub/checkpoints/``. Nothing is ever downloaded: while
pytorch-fid builds the network, its ``load_state_dict_from_url`` is replaced by a function that
hands back the state dict already read from the local file (``torch.load(weights_only=True)``).
A missing file is a :class:`~probekit.errors.MissingResourceError` that says which file to put
where (docs/metrics/inception_weights.md).

Preprocessing modes (``preprocessing`` setting, recorded in provenance):

``pytorch-fid-png`` (default)
    the PNG round trip in memory: values are mapped from ``value_range`` to [0, 1], quantized
    to 8 bits as ``torchvision.utils.save_image`` does (``floor(clip(255 x + 0.5, 0, 255))``),
    then divided by 255 in float32 as pytorch-fid's ``ToTensor`` does after reading the PNG.
    FID then equals ``python -m pytorch_fid`` on the images written by :func:`save_png_folder`.
``pytorch-fid-float``
    the same without the 8-bit quantization (clipped to [0, 1], float32).

Grayscale images (1 channel) are replicated to RGB, as PIL's ``convert("RGB")`` does.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic

from probekit import FeatureExtractor, Settings, hookimpl
from probekit.errors import InputFileError, MissingResourceError, ValidationError
from probekit.features import ValueRange
from probekit.validation import TorchDevice, check_array

#: File name of pytorch-fid's weights (the name its download would use in the torch hub cache).
WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
#: Where the file can be fetched on a machine that has internet access (never by probekit).
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILENAME
)
#: Environment variable naming a weights file (used when the ``weights`` setting is unset).
WEIGHTS_ENV = "PROBEKIT_INCEPTION_WEIGHTS"
#: pool3 feature dimension (FID's); pytorch-fid's ``--dims`` also offers earlier blocks.
N_FEATURES = 2048
DIMS = (64, 192, 768, 2048)
PREPROCESSING_MODES = ("pytorch-fid-png", "pytorch-fid-float")




def check_dims(value: int) -> int:
    if value not in DIMS:
        raise ValueError(f"must be one of {', '.join(map(str, DIMS))} (pytorch-fid's --dims)")
    return value


class InceptionSettings(Settings):
    weights: str | None = pydantic.Field(
        None, description=f"weights file; default ${WEIGHTS_ENV}, then the torch hub cache"
    )
    preprocessing: Literal["pytorch-fid-png", "pytorch-fid-float"] = pydantic.Field(
        "pytorch-fid-png", description="8-bit PNG round trip in memory, or float input"
    )
    value_range: ValueRange = pydantic.Field(
        (0.0, 1.0), description="range of the input values, mapped to [0, 1] (e.g. -1,1)"
    )
    dims: int = pydantic.Field(
        2048, description="feature block as pytorch-fid's --dims (2048 = pool3, FID)"
    )
    batch_size: int = pydantic.Field(50, gt=0, description="images per network forward")
    device: TorchDevice = pydantic.Field("cpu", description="torch device, e.g. cpu or cuda")
    optimize: bool = pydantic.Field(
        True, description="fold batch norms into convolutions, channels-last layout (faster; "
        "same function up to float32 rounding)"
    )

    _check_dims = pydantic.field_validator("dims")(check_dims)


# -- weights -----------------------------------------------------------------------------------


def default_weights_path() -> Path:
    """``<torch hub dir>/checkpoints/pt_inception-2015-12-05-6726825d.pth``: the file
    pytorch-fid would read (``TORCH_HOME`` respected, as torch.hub does)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME


def resolve_weights_path(weights: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The weights file to use and where its name came from; raise if it is not there."""
    if weights is not None:
        path, source = Path(weights).expanduser(), "the `weights` setting"
    elif os.environ.get(WEIGHTS_ENV, "").strip():
        path, source = Path(os.environ[WEIGHTS_ENV].strip()).expanduser(), f"${WEIGHTS_ENV}"
    else:
        path, source = default_weights_path(), "the torch hub cache"
    if not path.is_file():
        raise MissingResourceError(
            f"inception: the FID Inception weights file is missing: looked for {str(path)!r} "
            f"(from {source}). probekit never downloads it. On a machine with internet, fetch "
            f"{WEIGHTS_URL} and copy it to {str(default_weights_path())!r} (the torch hub "
            f"cache; set TORCH_HOME to move it), or point ${WEIGHTS_ENV} or the `weights` "
            "setting at the file. See docs/metrics/inception_weights.md."
        )
    return path, source


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_MODELS: OrderedDict[tuple, tuple[Any, str]] = OrderedDict()
_MODELS_LOCK = threading.Lock()
_MAX_MODELS = 2


def load_fid_inception(
    path: str | os.PathLike, device: str = "cpu", dims: int = N_FEATURES, optimize: bool = False
) -> tuple[Any, str]:
    """pytorch-fid's ``InceptionV3`` (output block of ``dims``, pool3 by default) with the
    weights in ``path``, in eval mode; ``optimize`` applies :func:`optimize_for_inference`.

    Returns ``(model, sha256 of the file)``. Models are cached by path, size and modification
    time, so preparing several metrics reads the file once.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, device, dims, optimize)
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
        sha = sha256_file(path)
        from probekit.io import load_torch_file

        try:
            state = load_torch_file(path, who="inception")  # one line, never torch's advice
        except InputFileError as exc:
            raise InputFileError(
                f"{exc} Replace it with pytorch-fid's {WEIGHTS_FILENAME}."
            ) from None
        model = _build_offline(state, path, dims).to(device).eval()
        if optimize:
            model = optimize_for_inference(model)
        _MODELS[key] = (model, sha)
        while len(_MODELS) > _MAX_MODELS:
            _MODELS.popitem(last=False)
        return model, sha


def _build_offline(state: Any, path: Path, dims: int):
    """Build pytorch-fid's InceptionV3 with ``state`` as its weights, with no way to download.

    pytorch-fid's ``fid_inception_v3()`` fetches its weights with ``load_state_dict_from_url``
    (which downloads when the file is not in the hub cache). That name is replaced, for the
    duration of the build and under a lock, by a function returning ``state``.
    """
    from unittest import mock

    import pytorch_fid.inception as pfi

    def offline(url: str, *args: Any, **kwargs: Any) -> Any:
        if url != pfi.FID_WEIGHTS_URL:  # pragma: no cover - a future pytorch-fid change
            raise MissingResourceError(f"inception: refusing to fetch {url!r} (offline).")
        return state

    if not isinstance(state, dict):
        raise InputFileError(
            f"inception: {str(path)!r} must hold a state dict; got {type(state).__name__}."
        )
    try:
        with mock.patch.object(pfi, "load_state_dict_from_url", offline):
            return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    except RuntimeError as exc:  # load_state_dict: missing / unexpected keys, wrong shapes
        first = str(exc).splitlines()[0][:300]
        raise InputFileError(
            f"inception: {str(path)!r} is not pytorch-fid's Inception state dict ({first}). "
            f"Replace it with {WEIGHTS_FILENAME} from {WEIGHTS_URL}."
        ) from None


def optimize_for_inference(model: Any) -> Any:
    """Fold each eval-mode batch norm into the convolution before it and switch to the
    channels-last memory layout.

    The network computes the same function (``conv`` then the affine ``bn`` is one affine
    ``conv``); only float32 rounding changes, about 1e-6 relative on pool3 features, far
    below what moves an FID at 1e-3. On CPUs (oneDNN) it is about 2-3× faster.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(conv, bn)  # pytorch-fid's BasicConv2d blocks
            module.bn = torch.nn.Identity()
    return model.to(memory_format=torch.channels_last)


def write_random_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a seeded *random* state dict with the keys and shapes of pytorch-fid's Inception.

    For tests and benchmarks on machines without the real weights: it makes both probekit and
    ``python -m pytorch_fid`` run the same (meaningless) network. Convolutions get He-normal
    weights and batch norms random affine/running statistics, so activations stay of order one
    through the depth of the network. Never use it for a number you report.
    """
    from unittest import mock

    import pytorch_fid.inception as pfi
    import torch

    from probekit.io import atomic_write_bytes

    built: list[torch.nn.Module] = []
    original = pfi._inception_v3

    def capture(*args: Any, **kwargs: Any):
        built.append(original(*args, **kwargs))
        return built[-1]

    def own_state(url: str, *args: Any, **kwargs: Any):
        return built[-1].state_dict()  # FID blocks are in place when the weights are loaded

    with _MODELS_LOCK, mock.patch.object(pfi, "_inception_v3", capture), mock.patch.object(
        pfi, "load_state_dict_from_url", own_state
    ):
        pfi.fid_inception_v3()
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in built[-1].state_dict().items():
        t = tensor.clone()
        if name.endswith("num_batches_tracked"):
            pass
        elif t.ndim == 4:  # conv weight
            fan_in = t.shape[1] * t.shape[2] * t.shape[3]
            t = torch.randn(t.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif t.ndim == 2:  # fc weight
            t = torch.randn(t.shape, generator=gen) / t.shape[1] ** 0.5
        elif name.endswith(("running_var", ".weight")):
            t = 0.5 + torch.rand(t.shape, generator=gen)
        else:  # biases, running means
            t = 0.1 * torch.randn(t.shape, generator=gen)
        state[name] = t
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


# -- preprocessing -----------------------------------------------------------------------------


def _to_unit_range(x: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    low, high = value_range
    return (np.asarray(x, dtype=np.float64) - low) / (high - low)


def quantize_to_uint8(x: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """The 8-bit values a PNG of ``x`` holds: ``floor(clip(255 u + 0.5, 0, 255))`` with ``u``
    the values mapped from ``value_range`` to [0, 1] (torchvision ``save_image`` rounding)."""
    u = _to_unit_range(x, value_range)
    return np.floor(np.clip(u * 255.0 + 0.5, 0.0, 255.0)).astype(np.uint8)


def save_png_folder(
    images: np.ndarray, folder: str | os.PathLike, value_range: tuple[float, float] = (0.0, 1.0)
) -> list[Path]:
    """Write ``images`` ``(n, 1 or 3, h, w)`` as ``000000.png``, … with :func:`quantize_to_uint8`:
    the files whose ``python -m pytorch_fid`` FID the ``pytorch-fid-png`` mode reproduces."""
    from PIL import Image

    q = quantize_to_uint8(images, value_range)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(q):
        arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        path = folder / f"{i:06d}.png"
        Image.fromarray(np.ascontiguousarray(arr), mode="L" if arr.ndim == 2 else "RGB").save(path)
        paths.append(path)
    return paths


def to_inception_input(
    x: np.ndarray, *, value_range: tuple[float, float], preprocessing: str
):
    """Float32 tensor ``(n, 3, h, w)`` in [0, 1], as pytorch-fid feeds its network."""
    import torch

    if x.shape[1] not in (1, 3):
        raise ValidationError(
            f"inception: images must have 1 (grayscale) or 3 (RGB) channels; got {x.shape[1]} "
            f"(shape {x.shape}). Select or convert the channels first."
        )
    if preprocessing == "pytorch-fid-png":
        t = torch.from_numpy(quantize_to_uint8(x, value_range)).to(torch.float32).div(255)
    else:
        u = np.clip(_to_unit_range(x, value_range), 0.0, 1.0)
        t = torch.from_numpy(u.astype(np.float32))
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.contiguous()


# -- the extractor -----------------------------------------------------------------------------


class InceptionFeatures(FeatureExtractor):
    """pool3 features (2048-d) of pytorch-fid's InceptionV3 from local weights."""

    name = "inception"
    modality = "image"
    description = "pytorch-fid InceptionV3 pool3 (2048-d); local weights, never downloaded"
    Settings = InceptionSettings
    settings: InceptionSettings

    def __init__(self, settings: Any = None, **overrides: Any):
        super().__init__(settings, **overrides)
        s = self.settings
        self.preprocessing = f"{s.preprocessing}; value_range={list(s.value_range)}; dims={s.dims}"
        self._model: Any = None
        self._sha256: str | None = None
        self.weights_path_: Path | None = None

    def _load(self) -> Any:
        if self._model is None:
            import torch

            try:
                device = torch.device(self.settings.device)
            except RuntimeError as exc:
                raise ValidationError(
                    f"inception: device must be a torch device such as 'cpu' or 'cuda'; got "
                    f"{self.settings.device!r} ({exc})."
                ) from None
            if device.type == "cuda" and not torch.cuda.is_available():
                raise ValidationError(
                    "inception: device is 'cuda' but no CUDA device is available; set device=cpu."
                )
            path, _ = resolve_weights_path(self.settings.weights)
            self._model, self._sha256 = load_fid_inception(
                path, str(device), self.settings.dims, self.settings.optimize
            )
            self.weights_path_ = path
        return self._model

    @property
    def weights_sha256(self) -> str | None:
        self._load()
        return self._sha256

    def provenance_extra(self) -> dict[str, Any]:
        """Recorded in the provenance of metrics computed in this space."""
        self._load()
        return {"inception_weights_path": str(self.weights_path_),
                "inception_dims": self.settings.dims,
                "inception_optimized": self.settings.optimize}

    def extract(self, x: np.ndarray) -> np.ndarray:
        import torch

        x = check_array(x, who=self.name, name="images", modality="image", dtype=np.float32)
        model = self._load()
        device = next(model.parameters()).device
        dims = self.settings.dims
        out = np.empty((len(x), dims), dtype=np.float32)
        step = self.settings.batch_size
        with torch.inference_mode():
            for s in range(0, len(x), step):
                batch = to_inception_input(
                    x[s : s + step], value_range=self.settings.value_range,
                    preprocessing=self.settings.preprocessing,
                )
                layout = torch.channels_last if self.settings.optimize else torch.contiguous_format
                block = model(batch.to(device, memory_format=layout))[0]
                if block.shape[2:] != (1, 1):  # earlier blocks: spatial mean, as pytorch-fid
                    block = torch.nn.functional.adaptive_avg_pool2d(block, output_size=(1, 1))
                out[s : s + step] = block.reshape(len(batch), dims).cpu().numpy()
        return out


@hookimpl
def register_feature_extractors():
    return [InceptionFeatures]
