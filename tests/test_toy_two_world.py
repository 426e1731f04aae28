"""The toy world built for claim 3 (kind "two-populations"): easy cores far from every
boundary, hard points just inside the boundary lines with their eps-box on their side; and
the overlap world of claims 1 and 2 unchanged, bit for bit."""
import hashlib
import json

import numpy as np
import pytest
import torch

from sovr_tutorial.lab import toy
from sovr_tutorial.toy import world as w

TWO = "two-populations"
EPS = 0.0375                     # the toy tier's eps in [0, 1] units


def digest(points) -> str:
    x, y, wide = points
    return hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()
                          + wide.numpy().tobytes()).hexdigest()


# sha256 of the overlap world's points, computed before the worlds had kinds
OVERLAP_DIGESTS = {
    "make_points(600, 3)":
        "6257c49074198ff2f9d26dbe0300fe73d4d0731a61441ef3ab7ee6b669a7b6b3",
    "make_points(1000, 7, num_classes=4, wide_fraction=0.5)":
        "cc7936885242fea8a6b0b93d5863148cce021c2d9f2a7a3570014413c5736d43",
    "make_world(0)[0]": "e1f953106a5a07096669ea4e7a2658ee36eb1ddb99349cb0b63d9c60bb5d3e89",
    "make_world(0)[1]": "db6e4ee36570e7e7fa80e81c7bfa67361602cb544d73ca6d2f930b3bd50f413c",
}


def test_the_overlap_world_is_unchanged_bit_for_bit():
    got = {"make_points(600, 3)": digest(w.make_points(600, 3)),
           "make_points(1000, 7, num_classes=4, wide_fraction=0.5)":
               digest(w.make_points(1000, 7, num_classes=4, wide_fraction=0.5)),
           "make_world(0)[0]": digest(w.make_world(0)[0]),
           "make_world(0)[1]": digest(w.make_world(0)[1])}
    assert got == OVERLAP_DIGESTS
    assert digest(w.make_points(600, 3, kind="overlap")) == OVERLAP_DIGESTS["make_points(600, 3)"]
    assert digest(w.make_points(600, 3, kind=TWO)) != OVERLAP_DIGESTS["make_points(600, 3)"]


# --------------------------------------------------------------------------- geometry

def side_distances(x, y, num_classes):
    """Signed distances (data units) of points to their class's two boundary lines,
    positive on the class's side: (N, 2), and each line's normal angle (N, 2)."""
    pts = w.to_data(x)
    rays = w.boundary_lines(num_classes)
    y = np.asarray(y)
    dist, normals = [], []
    for line_index, sign in (((y - 1) % num_classes, 1.0), (y, -1.0)):
        # ray y - 1 is the class's lower line (its side: counter-clockwise of the ray),
        # ray y its upper line (its side: clockwise)
        a = rays[line_index]
        normal = a + sign * np.pi / 2
        n = np.stack([np.cos(normal), np.sin(normal)], axis=1)
        dist.append((pts * n).sum(1))
        normals.append(normal)
    return np.stack(dist, 1), np.stack(normals, 1)


def nearest_centre(points_data, num_classes):
    c = w.class_centres(num_classes)
    return np.argmin(((points_data[:, None] - c[None]) ** 2).sum(-1), axis=1)


def design_violations(x, y, hard, num_classes, eps=EPS):
    """The reasons the hard points break the design (empty list: they keep it)."""
    d, normals = side_distances(x, y, num_classes)
    # distance to each line in units of the eps-box's reach across it; the nearest line in
    # those units is the one the box comes closest to crossing
    ratio = (d / w.box_reach(normals, w.eps_in_data_units(eps))).min(1)
    h = np.asarray(hard)
    out = []
    if (d[h] <= 0).any():
        out.append("a hard point on the wrong side of its line")
    ratio = ratio[h]
    lo, hi = w.HARD_GAP
    if ratio.min() < lo - 1e-3 or ratio.max() > hi + 1e-3:
        out.append(f"distance / reach in [{ratio.min():.3f}, {ratio.max():.3f}], not {w.HARD_GAP}")
    # every corner of the eps-box in the class's own sector: the box crosses no boundary
    for corner in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        shifted = np.asarray(x, dtype=np.float64)[h] + eps * np.asarray(corner)
        if (nearest_centre(w.to_data(shifted), num_classes) != np.asarray(y)[h]).any():
            out.append(f"an eps-box corner {corner} crosses a boundary")
    return out


@pytest.mark.parametrize("num_classes", [6, 4, 5])
def test_hard_points_lie_in_the_band_on_their_side_with_the_box_inside(num_classes):
    x, y, hard = w.make_points(3000, 5, kind=TWO, num_classes=num_classes)
    assert hard.any() and design_violations(x.numpy(), y.numpy(), hard.numpy(), num_classes) == []


def test_the_design_check_can_fail():
    x, y, hard = w.make_points(600, 1, kind=TWO)
    x, y, h = x.numpy().copy(), y.numpy(), hard.numpy()
    i = np.flatnonzero(h)[0]
    d, normals = side_distances(x[i:i + 1], y[i:i + 1], 6)
    j = np.argmin(d[0])
    n = np.array([np.cos(normals[0, j]), np.sin(normals[0, j])])
    moved = x.copy()
    moved[i] -= d[0, j] * n * w.SCALE * 0.5          # halfway to its line: the box crosses it
    assert any("crosses" in v for v in design_violations(moved, y, h, 6))
    assert any("distance" in v for v in design_violations(moved, y, h, 6))
    moved[i] -= d[0, j] * n * w.SCALE * 1.0          # beyond the line
    assert any("wrong side" in v for v in design_violations(moved, y, h, 6))


def test_easy_points_are_the_cores_far_from_every_boundary():
    x, y, hard = w.make_points(3000, 2, kind=TWO)
    d, _ = side_distances(x.numpy(), y.numpy(), 6)
    easy = ~hard.numpy()
    # a core point is RADIUS sin(30 deg) = 1.0 from its lines, with std 0.25
    assert np.median(d[easy].min(1)) > 0.75
    assert np.median(d[hard.numpy()].min(1)) < 0.6
    assert (nearest_centre(w.to_data(x.numpy()[easy]), 6) == y.numpy()[easy]).mean() > 0.999


def test_classes_balanced_hard_share_and_unit_square():
    x, y, hard = w.make_points(600, 3, kind=TWO)
    assert x.shape == (600, 2) and x.dtype == torch.float32 and hard.dtype == torch.bool
    assert x.min() > 0 and x.max() < 1                     # nothing clipped at the edges
    assert torch.bincount(y, minlength=6).tolist() == [100] * 6
    assert abs(hard.float().mean().item() - w.HARD_FRACTION) < 0.06
    # each hard class uses both its lines, about half each
    d, _ = side_distances(*w.make_points(6000, 4, kind=TWO)[:2], 6)
    h = w.make_points(6000, 4, kind=TWO)[2].numpy()
    assert 0.4 < (np.argmin(d[h], axis=1) == 0).mean() < 0.6


def test_the_world_is_a_pure_function_of_the_seed():
    a = w.make_world(3, n_train=500, n_test=300, kind=TWO)
    b = w.make_world(3, n_train=500, n_test=300, kind=TWO)
    for pa, pb in zip(a, b):
        assert digest(pa) == digest(pb)
    assert digest(a[0]) != digest(w.make_world(4, n_train=500, n_test=300, kind=TWO)[0])
    assert digest(a[1]) == digest(w.make_world(3, n_train=50, n_test=300, kind=TWO)[1])


def test_the_world_constants_match_the_toy_tier():
    assert w.HARD_EPS == pytest.approx(w.eps_in_data_units(w.toy_tier().eps))
    assert w.box_reach(0.0) == pytest.approx(0.3)
    assert w.box_reach(np.pi / 4) == pytest.approx(0.3 * np.sqrt(2))


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="kind"):
        w.make_points(10, 0, kind="two_populations")
    with pytest.raises(ValueError, match="kind"):
        w.make_world(0, kind="overlapping")
    for k in (3, 7):
        with pytest.raises(ValueError, match="4 to 6 classes"):
            w.make_points(10, 0, kind=TWO, num_classes=k)
    with pytest.raises(ValueError, match="wide_fraction"):
        w.make_points(10, 0, kind=TWO, wide_fraction=1.5)
    with pytest.raises(ValueError, match="kind"):
        toy.world_results_folder("two")


# --------------------------------------------------------------------------- the runner

def test_the_runner_records_the_world_and_picks_its_folder(tmp_path, capsys):
    assert toy.world_results_folder(TWO).name == "toy-two"
    assert toy.world_results_folder() == toy.results_folder()
    assert toy.parse_args(["--world", TWO]).out == str(toy.world_results_folder(TWO))
    assert toy.parse_args([]).out == str(toy.results_folder())
    args = ["--world", TWO, "--methods", "at", "--seeds", "0", "--out", str(tmp_path)]
    for item in ("epochs=1", "n_train=64", "n_test=64", "n_autoattack=0"):
        args += ["--set", item]
    assert toy.main(args) == 0
    r = json.loads((tmp_path / "at-s0.json").read_text())
    assert r["data"]["kind"] == TWO and r["data"]["hard_gap"] == list(w.HARD_GAP)
    assert toy.result_world(r) == TWO and toy.result_world({"data": {}}) == "overlap"
    # a finished file of the other world is refused, not read back as this one
    assert toy.main(args[:1] + ["overlap"] + args[2:]) == 2
    assert "two-populations" in capsys.readouterr().err


# --------------------------------------------------------------------------- figures

def check_text(fig):
    """Every visible text at least 8 pt; the titles (axes' and the figure's) apart."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 8]
    assert small == [], small
    titles = [a.title for a in fig.axes if a.get_title()] + [fig._suptitle]
    boxes = [t.get_window_extent(renderer) for t in titles if t is not None]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)


def fake_result(slug, seed, values, peaks):
    from sovr_tutorial.runs import as_run
    run = as_run(slug)
    return {"run": run.name(seed), "method": run.method, "label": run.label, "seed": seed,
            "options": run.options(), "train_peaks": peaks,
            "margins": {"train_adv": {"values": list(values)}},
            "data": {"kind": TWO, "n_train": len(values), "n_test": 16}}


def test_the_claim3_figures_draw_with_readable_text():
    from sovr_tutorial.figures import claim3
    check_text(claim3.plot_two_world(w.make_world(0, n_train=600, kind=TWO)[0]))
    rng = np.random.default_rng(0)
    results = []
    for slug in ("at", "gairat", "mart", "sovr-r0.4"):
        for seed in (0, 1):
            hard = w.make_world(seed, n_train=300, n_test=16, kind=TWO)[0][2].numpy()
            v = np.where(hard, rng.normal(1, 0.5, 300), rng.normal(8, 2, 300))
            results.append(fake_result(slug, seed, v.round(3), [1.0, 8.0]))
    fig = claim3.plot_claim3_margins(results)
    check_text(fig)
    assert len(fig.axes) == 8 and "peaks per seed: 2,2" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="no hard point"):
        claim3.plot_two_world(w.make_points(60, 0, wide_fraction=0.0))
