"""CelebA preprocessing on generated JPEGs laid out like CelebA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from probekit.errors import MissingResourceError, ValidationError
from probekit.reference.data import (
    find_celeba_images,
    load_celeba_images,
    nested_splits,
    preprocess_image,
)


def make_fake_celeba(root, n=12, size=(178, 218), seed=0):
    """``root/img_align_celeba/000001.jpg …`` with random smooth RGB content (CelebA size)."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(1, n + 1):
        small = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize(size, Image.BILINEAR)
        im.save(folder / f"{i:06d}.jpg", quality=95)
    return folder


def test_preprocessing_matches_the_papers_torchvision_chain(tmp_path):
    folder = make_fake_celeba(tmp_path, n=3)
    paper = transforms.Compose([transforms.ToTensor(), transforms.Resize(32),
                                transforms.CenterCrop(32), transforms.Grayscale(1)])
    for f in sorted(folder.iterdir()):
        with Image.open(f) as im:
            expected = paper(im.convert("RGB"))
        got = preprocess_image(f)
        assert got.shape == (1, 32, 32)
        assert torch.allclose(got, expected, atol=1e-6)


def test_planted_image_shorter_side_crop_and_gray_weights(tmp_path):
    # 40 wide × 80 tall: the shorter side (width) becomes 32, the height 64, of which the
    # central 32 rows (original rows 20–60) are kept; the top and bottom 10 rows are red, the
    # rest blue.
    arr = np.zeros((80, 40, 3), dtype=np.uint8)
    arr[:10, :, 0] = arr[70:, :, 0] = 255
    arr[10:70, :, 2] = 255
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    got = preprocess_image(path)[0]
    assert got.shape == (32, 32)
    assert torch.allclose(got, torch.full((32, 32), 0.114), atol=2e-3)  # only blue survives


def test_file_order_is_natural_and_the_root_may_be_either_folder(tmp_path):
    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    for name in ["10.jpg", "9.jpg", "100.jpg", "notes.txt"]:
        (folder / name).write_bytes(b"")
    names = [f.name for f in find_celeba_images(tmp_path)]
    assert names == ["9.jpg", "10.jpg", "100.jpg"]
    assert [f.name for f in find_celeba_images(folder)] == names


def test_missing_folder_says_where_celeba_comes_from(tmp_path):
    with pytest.raises(MissingResourceError, match=r"img_align_celeba.*mmlab") as info:
        find_celeba_images(tmp_path / "nowhere")
    assert "--data-root" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_cache_is_one_tensor_file_and_is_reused(tmp_path):
    make_fake_celeba(tmp_path, n=5)
    cache = tmp_path / "cache"
    first = load_celeba_images(tmp_path, cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    assert first.shape == (5, 1, 32, 32) and first.min() >= 0 and first.max() <= 1
    # overwrite an image: the cached tensor, not the new file, is what loads
    Image.new("RGB", (178, 218), (255, 255, 255)).save(tmp_path / "img_align_celeba/000001.jpg")
    assert torch.equal(load_celeba_images(tmp_path, cache_dir=cache), first)


def test_nested_splits_center_on_the_training_mean():
    images = np.random.default_rng(0).random((20, 1, 4, 4)).astype(np.float32)
    small = nested_splits(images, 5, 6, who="t")
    large = nested_splits(images, 10, 6, who="t")
    mean5 = images[:5].mean(dtype=np.float64)
    assert np.allclose(small.train, images[:5] - mean5, atol=1e-6)
    assert np.allclose(small.holdout, images[-6:] - mean5, atol=1e-6)
    assert abs(small.train.mean()) < 1e-6
    # nested: the first 5 of the larger set are the same images (up to the mean shift)
    shift = images[:10].mean(dtype=np.float64) - mean5
    assert np.allclose(large.train[:5] + shift, small.train, atol=1e-6)
    with pytest.raises(ValidationError, match="n_train"):
        nested_splits(images, 15, 6, who="t")
