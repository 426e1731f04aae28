"""Where CIFAR-10 comes from and how it is checked (data.py, the ``data`` command), how
subsets are drawn (sampling.py) and how it is batched (batches.py).

Small fixtures (a few PIL-made JPEGs in a zip, a tiny CIFAR-format pickle folder) are
built in tmp_path; the real data (the JPEG copy or the official set, found as
``load_cifar10`` finds it) is decoded once per session into a tmp cache.
"""
import hashlib
import io
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from sovr_tutorial import data, paths
from sovr_tutorial.__main__ import data_main
from sovr_tutorial.batches import _epoch_seed, augment, batches
from sovr_tutorial.data import (CLASSES, DATA_ENV, LABELS, DataError, load_cifar10,
                                sha256_file, verify_sha256)
from sovr_tutorial.models import CIFAR_MEAN
from sovr_tutorial.sampling import balanced_subset


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test sees the user's data settings or writes into the repository's data/."""
    monkeypatch.delenv(DATA_ENV, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv(data.HOME_ENV, str(home))
    return home


# ---------------------------------------------------------------------------- fixtures

def _two_tone(label, index):
    """A 32x32 RGB image: top half one colour, bottom half another (JPEG keeps it closely)."""
    img = np.empty((32, 32, 3), dtype=np.uint8)
    img[:16] = (20 + 22 * label, 40 + 50 * index, 200)
    img[16:] = (230 - 20 * label, 30, 60 + 40 * index)
    return img


def make_jpeg_zip(folder, name="test.zip", per_class=3):
    """Write CLASS/NNNN.jpg members (in scrambled order) and return (zip path, x, y) in
    the order the loader must produce: class index, then file name."""
    folder.mkdir(parents=True, exist_ok=True)
    members, xs, ys = [], [], []
    for label, cls in enumerate(CLASSES):
        for index in range(per_class):
            img = _two_tone(label, index)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95, subsampling=0)
            members.append((f"{cls}/{index:04d}.jpg", buf.getvalue()))
            xs.append(img.transpose(2, 0, 1))
            ys.append(label)
    rng = np.random.default_rng(0)
    path = folder / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in rng.permutation(len(members)):
            zf.writestr(*members[i])
    return path, torch.from_numpy(np.stack(xs)), torch.tensor(ys)


@pytest.fixture
def jpeg_fixture(tmp_path, monkeypatch):
    """A tiny JPEG copy (train.zip, test.zip) whose hashes JPEG_SHA256 is patched to."""
    folder = tmp_path / "jpeg"
    out = {}
    hashes = {}
    for split, per_class in (("train", 4), ("test", 3)):
        path, x, y = make_jpeg_zip(folder, f"{split}.zip", per_class)
        out[split] = (x, y)
        hashes[path.name] = sha256_file(path)
    monkeypatch.setattr(data, "JPEG_SHA256", hashes)
    return folder, out


def make_cifar_batches(root, n_per_batch=4, n_test=6):
    """torchvision's cifar-10-batches-py layout with random pixels; returns md5s and arrays."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(1)
    files, arrays = {}, {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else n_per_batch
        pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        # str keys: CIFAR's Python 2 pickles load as "data"/"labels" under torchvision's
        # encoding="latin1" (b"data" only appears with encoding="bytes").
        with open(base / name, "wb") as f:
            pickle.dump({"data": pixels, "labels": labels, "batch_label": name}, f, protocol=2)
        arrays[name] = (pixels, labels)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CLASSES), "num_cases_per_batch": n_per_batch,
                     "num_vis": 3072}, f, protocol=2)
    for name in names + ["batches.meta"]:
        files[name] = hashlib.md5((base / name).read_bytes()).hexdigest()
    return files, arrays


@pytest.fixture
def cifar_fixture(tmp_path, monkeypatch):
    """A tiny official-format CIFAR-10; torchvision's own md5 check runs on it."""
    root = tmp_path / "official"
    md5, arrays = make_cifar_batches(root)
    CIFAR10 = torchvision.datasets.CIFAR10
    monkeypatch.setattr(CIFAR10, "train_list",
                        [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
    return root, arrays


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cifar_cache")


@pytest.fixture(scope="session")
def real_test(data_dir, real_cache):
    """The real test split, decoded once per session into a tmp cache."""
    return load_cifar10("test", data_dir, cache_dir=real_cache)


# ---------------------------------------------------------------------------- the real data

def test_real_test_split_has_cifar_shapes_and_1000_per_class(real_test):
    x, y, info = real_test
    assert x.shape == (10000, 3, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 1000))
    assert info["label"] == LABELS[info["source"]]


def test_real_test_split_channels_are_rgb(real_test):
    # CIFAR's channel means differ by ~0.045 between R and B: a BGR or HWC mix-up fails.
    x, _, _ = real_test
    mean = x.float().div(255).mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.tensor(CIFAR_MEAN), atol=0.01), mean


@pytest.mark.slow
def test_real_train_split_has_50000_images_5000_per_class(data_dir, real_cache):
    x, y, info = load_cifar10("train", data_dir, cache_dir=real_cache)
    assert x.shape == (50000, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 5000))
    mean = x.float().div(255).mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.tensor(CIFAR_MEAN), atol=0.002), mean


def test_real_subset_is_exactly_balanced(real_test):
    x, y, _ = real_test
    xs, ys = balanced_subset(x, y, 1000, seed=3)
    assert torch.equal(torch.bincount(ys, minlength=10), torch.full((10,), 100))


# ---------------------------------------------------------------------------- sha256

def test_sha256_file_streams_to_the_same_hash(tmp_path):
    f = tmp_path / "blob.bin"
    payload = os.urandom(10_000)
    f.write_bytes(payload)
    assert sha256_file(f, chunk_size=333) == hashlib.sha256(payload).hexdigest()


def test_verify_sha256_names_file_and_both_hashes_and_leaves_file_alone(tmp_path):
    f = tmp_path / "test.zip"
    f.write_bytes(b"not the real thing")
    actual = hashlib.sha256(b"not the real thing").hexdigest()
    assert verify_sha256(f, actual) == actual
    with pytest.raises(DataError) as err:
        verify_sha256(f, "0" * 64)
    msg = str(err.value)
    assert str(f) in msg and "0" * 64 in msg and actual in msg and DATA_ENV in msg
    assert f.read_bytes() == b"not the real thing"


def test_fake_test_zip_is_refused_by_the_real_hash(tmp_path):
    # The layout is right, the content is not the published copy.
    path, _, _ = make_jpeg_zip(tmp_path / "fake")
    before = path.read_bytes()
    with pytest.raises(DataError) as err:
        load_cifar10("test", path.parent, cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert str(path) in msg and data.JPEG_SHA256["test.zip"] in msg
    assert sha256_file(path) in msg
    assert path.read_bytes() == before
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_corrupted_copy_is_refused_and_untouched(jpeg_fixture, tmp_path):
    folder, _ = jpeg_fixture
    bad_dir = tmp_path / "corrupt"
    bad_dir.mkdir()
    bad = bad_dir / "test.zip"
    shutil.copy(folder / "test.zip", bad)
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="wrong sha256") as err:
        load_cifar10("test", bad_dir, cache_dir=tmp_path / "cache")
    assert str(bad) in str(err.value)
    assert bad.read_bytes() == bytes(raw)
    # The good copy still loads.
    x, _, _ = load_cifar10("test", folder, cache_dir=tmp_path / "cache")
    assert x.shape == (30, 3, 32, 32)


# ---------------------------------------------------------------------------- JPEG logic

def test_jpeg_zip_decodes_in_class_then_file_order(jpeg_fixture, tmp_path):
    folder, expected = jpeg_fixture
    x_ref, y_ref = expected["test"]
    x, y, info = load_cifar10("test", folder, cache_dir=tmp_path / "cache")
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(y, y_ref)
    diff = (x.int() - x_ref.int()).abs()
    assert diff.float().mean() < 2 and diff.max() <= 12     # JPEG is lossy, order is not
    dist = torch.cdist(x.flatten(1).float(), x_ref.flatten(1).float())
    assert torch.equal(dist.argmin(dim=1), torch.arange(30))
    assert info == {**info, "source": "jpeg", "label": "CIFAR-10 (JPEG copy)",
                    "path": str(folder / "test.zip"), "n": 30, "cached": False}
    x_train, y_train, _ = load_cifar10("train", folder, cache_dir=tmp_path / "cache")
    assert x_train.shape == (40, 3, 32, 32) and torch.equal(y_train, expected["train"][1])


def test_jpeg_cache_is_reused_and_a_touched_zip_is_rehashed(jpeg_fixture, tmp_path, monkeypatch):
    folder, _ = jpeg_fixture
    cache = tmp_path / "cache"
    x1, y1, info1 = load_cifar10("test", folder, cache_dir=cache)
    (cache_file,) = cache.glob("*test*.pt")
    assert info1["cache"] == str(cache_file)
    blob = torch.load(cache_file, weights_only=True)
    assert torch.equal(blob["x"], x1) and torch.equal(blob["y"], y1)
    assert not list(cache.glob("*.tmp"))

    calls = []
    real_sha = data.sha256_file
    monkeypatch.setattr(data, "sha256_file", lambda p, *a, **k: calls.append(p) or real_sha(p))
    x2, y2, info2 = load_cifar10("test", folder, cache_dir=cache)
    assert info2["cached"] is True and calls == []
    assert torch.equal(x1, x2) and torch.equal(y1, y2)

    st = (folder / "test.zip").stat()
    os.utime(folder / "test.zip", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_cifar10("test", folder, cache_dir=cache)
    assert len(calls) == 1


def test_default_cache_lives_in_the_data_dir(jpeg_fixture, isolated_env):
    folder, _ = jpeg_fixture
    assert paths.data_dir() == isolated_env
    load_cifar10("test", folder)
    assert list((isolated_env / "cache").glob("*.pt"))


def test_env_var_is_used_and_explicit_path_wins(jpeg_fixture, cifar_fixture, tmp_path,
                                                monkeypatch):
    folder, _ = jpeg_fixture
    official_root, _ = cifar_fixture
    monkeypatch.setenv(DATA_ENV, str(folder))
    _, _, info = load_cifar10("test", cache_dir=tmp_path / "cache")
    assert info["source"] == "jpeg" and info["path"] == str(folder / "test.zip")
    # what outputs print names the variable, not this machine's folder
    assert info["shown"] == f"${DATA_ENV}/test.zip" and str(tmp_path) not in info["shown"]
    _, _, info = load_cifar10("test", official_root)
    assert info["source"] == "official"


def test_zip_with_a_foreign_member_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "odd"
    path, _, _ = make_jpeg_zip(folder)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("cats/0000.jpg", b"x")
    monkeypatch.setattr(data, "JPEG_SHA256", {"test.zip": sha256_file(path)})
    with pytest.raises(DataError, match="cats/0000.jpg"):
        load_cifar10("test", folder, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------- official format

def test_official_format_round_trips_exactly(cifar_fixture):
    root, arrays = cifar_fixture
    x, y, info = load_cifar10("train", root)
    pixels = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((arrays[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(pixels).reshape(-1, 3, 32, 32))
    assert y.tolist() == labels
    assert info["source"] == "official" and info["label"] == "CIFAR-10"

    x, y, _ = load_cifar10("test", root)
    assert torch.equal(x, torch.from_numpy(arrays["test_batch"][0]).reshape(-1, 3, 32, 32))
    assert y.tolist() == arrays["test_batch"][1]


def test_official_format_in_default_dir_needs_no_path(cifar_fixture, monkeypatch):
    root, arrays = cifar_fixture
    monkeypatch.setenv(data.HOME_ENV, str(root))
    x, y, info = load_cifar10("test", download=False)
    assert info["source"] == "official" and y.tolist() == arrays["test_batch"][1]


def test_official_format_with_a_tampered_batch_is_refused(cifar_fixture):
    root, _ = cifar_fixture
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    raw = bytearray(batch.read_bytes())
    raw[-10] ^= 0xFF
    batch.write_bytes(bytes(raw))
    # torchvision checks every batch file's md5 before loading either split.
    for split in ("train", "test"):
        with pytest.raises(DataError, match=DATA_ENV) as err:
            load_cifar10(split, root)
        assert str(root) in str(err.value)


# ---------------------------------------------------------------------------- missing data

def test_nonexistent_path_says_how_to_get_data(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as err:
        load_cifar10("test", missing)
    assert str(missing) in str(err.value) and DATA_ENV in str(err.value)
    assert "--download" in str(err.value)


def test_empty_folder_names_what_was_expected(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as err:
        load_cifar10("train", empty)
    msg = str(err.value)
    assert str(empty) in msg and "train.zip" in msg and "cifar-10-batches-py" in msg
    assert DATA_ENV in msg


def test_folder_with_only_the_other_split_is_refused(jpeg_fixture, tmp_path):
    folder, _ = jpeg_fixture
    (folder / "train.zip").unlink()
    with pytest.raises(DataError, match="train.zip"):
        load_cifar10("train", folder, cache_dir=tmp_path / "cache")


def test_env_var_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "gone"))
    with pytest.raises(DataError, match=DATA_ENV) as err:
        load_cifar10("test")
    assert str(tmp_path / "gone") in str(err.value)


def test_no_data_and_no_download(isolated_env):
    with pytest.raises(DataError, match=DATA_ENV) as err:
        load_cifar10("test", download=False)
    assert "--download" in str(err.value)
    assert not any(isolated_env.iterdir())          # nothing was created


def test_a_file_is_not_a_data_folder(jpeg_fixture):
    folder, _ = jpeg_fixture
    with pytest.raises(DataError, match="folder"):
        load_cifar10("test", folder / "test.zip")


@pytest.mark.parametrize("split", ["val", "Train", None])
def test_bad_split_is_refused(split):
    with pytest.raises(ValueError, match="split"):
        load_cifar10(split)


# ---------------------------------------------------------------------------- command line

def test_cli_check_and_download_verify_the_env_copy(jpeg_fixture, isolated_env, monkeypatch,
                                                    capsys):
    assert data_main(["--check"]) == 1
    assert DATA_ENV in capsys.readouterr().out
    folder, _ = jpeg_fixture
    monkeypatch.setenv(DATA_ENV, str(folder))
    assert data_main(["--check"]) == 0
    assert "JPEG copy" in capsys.readouterr().out
    assert data_main(["--download"]) == 0
    assert len(list((isolated_env / "cache").glob("*.pt"))) == 2   # cache warmed
    monkeypatch.setenv(DATA_ENV, str(isolated_env / "missing"))
    assert data_main(["--download"]) == 1
    assert "--root" in capsys.readouterr().err


def test_cli_downloads_into_the_official_layout(cifar_fixture, isolated_env, monkeypatch,
                                                capsys):
    # torchvision finds the (fixture) archive already unpacked with the right md5s and
    # downloads nothing; the command reports both splits and where they are
    root, arrays = cifar_fixture
    assert data_main(["--download", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train: 20 images" in out and "test: 6 images" in out and str(root) in out
    assert f"set {DATA_ENV}={root}" in out     # not the default folder: how to use it


# ---------------------------------------------------------------------------- balanced_subset

def _indexed_set(counts):
    """x row i holds the value i, so selected rows can be traced back."""
    y = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(9))]
    x = torch.arange(len(y)).reshape(-1, 1)
    return x, y


@pytest.mark.parametrize("n", [1, 7, 25, 100, 300])
def test_balanced_subset_counts_differ_by_at_most_one(n):
    x, y = _indexed_set([30] * 10)
    xs, ys = balanced_subset(x, y, n, seed=0)
    counts = torch.bincount(ys, minlength=10)
    assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert torch.equal(y[xs.flatten()], ys)                 # rows and labels stay paired
    assert len(set(xs.flatten().tolist())) == n             # no repeats


def test_balanced_subset_is_deterministic_per_seed():
    x, y = _indexed_set([30] * 10)
    a = balanced_subset(x, y, 25, seed=1)[0]
    assert torch.equal(a, balanced_subset(x, y, 25, seed=1)[0])
    assert not torch.equal(a, balanced_subset(x, y, 25, seed=2)[0])


def test_balanced_subset_with_a_rare_class_fills_up_from_the_others():
    x, y = _indexed_set([2, 50, 50, 50])
    _, ys = balanced_subset(x, y, 41, seed=0)
    counts = torch.bincount(ys, minlength=4).tolist()
    assert counts[0] == 2 and sum(counts) == 41 and max(counts[1:]) - min(counts[1:]) <= 1


@pytest.mark.parametrize("n, exc", [(0, ValueError), (301, ValueError), (2.5, TypeError),
                                    ("10", TypeError)])
def test_balanced_subset_validates_n(n, exc):
    x, y = _indexed_set([30] * 10)
    with pytest.raises(exc, match="n"):
        balanced_subset(x, y, n)


def test_balanced_subset_validates_labels():
    with pytest.raises(ValueError, match="y"):
        balanced_subset(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long), 2)


# ---------------------------------------------------------------------------- augment

def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_augment_keeps_shape_dtype_and_range():
    x = torch.rand(16, 3, 32, 32, generator=_gen(0))
    out = augment(x, _gen(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    xu = (x * 255).to(torch.uint8)
    outu = augment(xu, _gen(1))
    assert outu.dtype == torch.uint8 and outu.shape == xu.shape


def test_augment_is_deterministic_by_generator():
    x = torch.rand(16, 3, 32, 32, generator=_gen(0))
    assert torch.equal(augment(x, _gen(5)), augment(x, _gen(5)))
    assert not torch.equal(augment(x, _gen(5)), augment(x, _gen(6)))


def test_augment_is_a_zero_padded_crop_or_its_mirror():
    x = torch.rand(40, 3, 8, 8, generator=_gen(0)) + 0.01     # no zeros inside images
    out = augment(x, _gen(2))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    seen_flip, seen_shift, changed = set(), set(), 0
    for i in range(len(x)):
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(
                       padded[i, :, dy:dy + 8, dx:dx + 8]))]
        assert matches, f"image {i} is not a crop of the zero-padded input"
        dy, dx, f = matches[0]
        seen_flip.add(f)
        seen_shift.add((dy, dx))
        changed += not torch.equal(out[i], x[i])
    assert seen_flip == {False, True} and len(seen_shift) > 10 and changed > 30


def test_augment_validates_inputs():
    with pytest.raises(ValueError, match="x"):
        augment(torch.rand(3, 32, 32), _gen(0))
    with pytest.raises(TypeError, match="generator"):
        augment(torch.rand(2, 3, 32, 32), None)
    with pytest.raises(TypeError, match="x"):
        augment(torch.zeros(2, 3, 32, 32, dtype=torch.int64), _gen(0))


# ---------------------------------------------------------------------------- batches

def _numbered(n):
    """uint8 images whose pixels hold i % 256, labels i (to trace every sample)."""
    x = (torch.arange(n) % 256).to(torch.uint8).reshape(-1, 1, 1, 1).expand(n, 3, 4, 4).clone()
    return x, torch.arange(n)


def test_batches_cover_every_sample_once_per_epoch():
    x, y = _numbered(103)
    loader = batches(x, y, 10, shuffle=True, seed=0)
    assert len(loader) == 11
    for _ in range(2):                                   # two epochs, each complete
        seen = []
        for xb, yb in loader:
            assert xb.dtype == torch.float32 and 0 <= xb.min() and xb.max() <= 1
            assert torch.equal((xb[:, 0, 0, 0] * 255).round().long(), yb % 256)
            seen.append(yb)
        seen = torch.cat(seen)
        assert sorted(seen.tolist()) == list(range(103))
        assert not torch.equal(seen, y)                   # actually shuffled


def test_batches_are_deterministic_per_seed_and_change_per_epoch():
    x, y = _numbered(50)

    def epoch(loader):
        return torch.cat([yb for _, yb in loader])

    a, b = batches(x, y, 8, seed=3), batches(x, y, 8, seed=3)
    first = epoch(a)
    assert torch.equal(first, epoch(b))
    second = epoch(a)
    assert not torch.equal(first, second)
    assert not torch.equal(first, epoch(batches(x, y, 8, seed=4)))
    a.set_epoch(1)
    assert torch.equal(epoch(a), second)                 # resume replays epoch 1


def test_batches_without_shuffle_keep_order_and_drop_last():
    x, y = _numbered(25)
    loader = batches(x, y, 10, shuffle=False, drop_last=True)
    assert len(loader) == 2
    assert torch.cat([yb for _, yb in loader]).tolist() == list(range(20))


def test_batches_with_augment_are_deterministic_and_in_range():
    x = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=_gen(0))
    y = torch.arange(20) % 10

    def run(seed):
        return [xb for xb, _ in batches(x, y, 8, augment=True, seed=seed)]

    a, b = run(0), run(0)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert all(t.min() >= 0 and t.max() <= 1 and t.shape[1:] == (3, 32, 32) for t in a)
    plain = torch.cat([xb for xb, _ in batches(x, y, 8, augment=False, seed=0)])
    assert not torch.equal(torch.cat(a), plain)


def _per_step_epoch(x, y, batch_size, seed, epoch, *, drop_last=False):
    """The batches as they were drawn before the epoch's plan: the order, then each step's
    crop offsets and flips drawn from the epoch's generator just before its batch."""
    g = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
    order = torch.randperm(x.shape[0], generator=g)
    n_batches = x.shape[0] // batch_size if drop_last else -(-x.shape[0] // batch_size)
    out = []
    for b in range(n_batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        out.append((augment(x[idx].float().div_(255), g), y[idx]))
    return out


@pytest.mark.parametrize("n, batch_size, drop_last", [(103, 10, False), (103, 10, True),
                                                      (64, 64, False), (7, 10, False)])
def test_batches_drawn_up_front_equal_the_per_step_draws_bit_for_bit(n, batch_size, drop_last):
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=_gen(1))
    y = torch.arange(n) % 10
    loader = batches(x, y, batch_size, augment=True, seed=5, drop_last=drop_last)
    for epoch in range(3):
        new = list(loader)
        ref = _per_step_epoch(x, y, batch_size, 5, epoch, drop_last=drop_last)
        assert len(new) == len(ref) == len(loader)
        for (xb, yb), (xr, yr) in zip(new, ref):
            assert torch.equal(yb, yr)
            assert xb.dtype == xr.dtype and torch.equal(xb, xr)
    loader.set_epoch(1)                                  # resume replays epoch 1 exactly
    assert all(torch.equal(a[0], b[0]) for a, b in
               zip(loader, _per_step_epoch(x, y, batch_size, 5, 1, drop_last=drop_last)))


def test_batches_move_the_epochs_plan_to_the_device_once(monkeypatch):
    """One host-to-device transfer per epoch: the plan (order, offsets, flips) is the only
    tensor the loader moves during a pass, however many batches the pass has."""
    x = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=_gen(0))
    y = torch.arange(50) % 10
    loader = batches(x, y, 8, augment=True, seed=0)
    moved = []
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        moved.append(tuple(self.shape))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    assert len(list(loader)) == 7
    assert moved == [(50 + 3 * 50,)]


@pytest.mark.parametrize("kwargs, exc", [({"batch_size": 0}, ValueError),
                                         ({"batch_size": 2.5}, TypeError),
                                         ({"shuffle": "yes"}, TypeError),
                                         ({"device": "toaster"}, ValueError)])
def test_batches_validate_arguments(kwargs, exc):
    x, y = _numbered(10)
    args = {"batch_size": 4, **kwargs}
    with pytest.raises(exc):
        batches(x, y, args.pop("batch_size"), **args)


def test_batches_want_uint8_images():
    _, y = _numbered(10)
    with pytest.raises(ValueError, match="uint8"):
        batches(torch.rand(10, 3, 4, 4), y, 4)
