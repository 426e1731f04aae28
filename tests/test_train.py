"""The one training loop: every method learns, a resumed run continues identically, the
same step serves fine-tuning, and points train like images."""
import copy

import pytest
import torch

from sovr_tutorial import (METHODS, Run, build_model, finetune, fit, get_tier, load_checkpoint,
                           predictions, train, trained_model)
from sovr_tutorial.train import method_loss

TIER = get_tier("ci", width=8, batch_size=100, train_steps=3)


def _fixed_batch_loss(run, model, x, y, epoch=99, tier=TIER):
    torch.manual_seed(123)  # the same PGD random start every time
    loss, stats = method_loss(run, model, x, y, tier=tier, epoch=epoch)
    return loss.item(), stats


@pytest.mark.parametrize("method", METHODS)
def test_a_few_steps_reduce_each_methods_own_loss(method, small_split):
    (x, y), _ = small_split
    x, y = x[:200].float() / 255, y[:200]
    torch.manual_seed(0)
    model = build_model("small_cnn", width=8).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    run = Run(method, value=0.5)
    before, stats = _fixed_batch_loss(run, model, x, y)
    for step in range(25):
        xb, yb = x[(step % 2) * 100:(step % 2 + 1) * 100], y[(step % 2) * 100:(step % 2 + 1) * 100]
        loss, _ = method_loss(run, model, xb, yb, tier=TIER, epoch=99)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, _ = _fixed_batch_loss(run, model, x, y)
    assert after < before - 0.05, f"{method}: loss {before:.3f} -> {after:.3f}"
    if method == "sovr":
        assert stats["switched"] == pytest.approx(0.5)   # ratio 0.5 of the batch gets OVR


def test_method_loss_refuses_a_method_it_has_no_rule_for(eval_batch):
    x, y = eval_batch
    run = Run("at")
    object.__setattr__(run, "method", "madry")   # a Run that skipped its own check
    with pytest.raises(ValueError, match="madry"):
        method_loss(run, build_model("small_cnn", width=4), x, y, tier=TIER, epoch=0)


def test_gairat_is_plain_at_during_its_burn_in(eval_batch):
    x, y = eval_batch
    torch.manual_seed(0)
    model = build_model("small_cnn", width=4).train()
    tier = TIER.replace(gairat_burn_in=2)
    # a fresh copy each time: a train-mode forward moves BatchNorm's running statistics
    at, _ = _fixed_batch_loss(Run("at"), copy.deepcopy(model), x, y, epoch=0, tier=tier)
    burn_in, _ = _fixed_batch_loss(Run("gairat"), copy.deepcopy(model), x, y, epoch=1, tier=tier)
    after, _ = _fixed_batch_loss(Run("gairat"), copy.deepcopy(model), x, y, epoch=2, tier=tier)
    assert burn_in == pytest.approx(at, rel=1e-6)
    assert after != pytest.approx(at, rel=1e-3)


def test_history_records_the_per_epoch_metrics(small_split):
    (x, y), (xv, yv) = small_split
    model, hist = train("sovr-r0.4", x[:300], y[:300], tier=TIER.replace(epochs=2),
                        x_val=xv[:100], y_val=yv[:100], seed=0, progress=False)
    assert [h["epoch"] for h in hist] == [1, 2]
    for key in ("loss", "lr", "train_acc", "clean_acc", "pgd_acc", "adv_margin_q10",
                "adv_margin_median", "adv_margin_q90", "switched", "seconds",
                "train_slice_pgd_acc"):
        assert key in hist[-1], key
    assert hist[-1]["adv_margin_q10"] <= hist[-1]["adv_margin_median"] <= hist[-1]["adv_margin_q90"]
    assert 0.35 <= hist[-1]["switched"] <= 0.45
    assert hist[1]["lr"] < hist[0]["lr"], "the step schedule should have decayed the lr"
    # the margin movie: one count per held-out image and per training-slice image
    assert sum(hist[-1]["hist_heldout_adv"]) == 100 and sum(hist[-1]["hist_train_adv"]) == 100
    assert not model.training


def test_same_seed_same_numbers(small_split):
    (x, y), _ = small_split
    runs = [train("at", x[:200], y[:200], tier=TIER.replace(epochs=1), seed=3, progress=False)
            for _ in range(2)]
    (m1, h1), (m2, h2) = runs
    assert h1[0]["loss"] == h2[0]["loss"]
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_train_leaves_the_callers_random_state_as_it_found_it(small_split):
    """train() seeds its own run; the caller's torch, NumPy and Python streams go on as if
    it had not been called (a notebook's later random draws do not depend on it)."""
    import random

    import numpy as np
    (x, y), _ = small_split

    def draws():
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())

    torch.manual_seed(11), np.random.seed(11), random.seed(11)
    expected = draws()
    torch.manual_seed(11), np.random.seed(11), random.seed(11)
    train("at", x[:100], y[:100], tier=TIER.replace(epochs=1), seed=3, progress=False)
    assert draws() == expected


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["at", "gairat"])
def test_resume_from_checkpoint_continues_identically(method, small_split, tmp_path):
    (x, y), (xv, yv) = small_split
    x, y = x[:200], y[:200]
    tier = TIER.replace(epochs=3, gairat_burn_in=1)
    kw = dict(tier=tier, x_val=xv[:50], y_val=yv[:50], seed=1, progress=False)
    ref, ref_hist = train(method, x, y, checkpoint_path=tmp_path / "ref.pt", **kw)

    def stop_after_2(epoch, record, model):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(method, x, y, checkpoint_path=tmp_path / "run.pt", on_epoch=stop_after_2, **kw)
    assert load_checkpoint(tmp_path / "run.pt")["epoch"] == 2
    resumed, hist = train(method, x, y, checkpoint_path=tmp_path / "run.pt", **kw)
    assert [h["loss"] for h in hist] == [h["loss"] for h in ref_hist]
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_refuses_a_checkpoint_of_another_run(small_split, tmp_path):
    (x, y), _ = small_split
    train("at", x[:100], y[:100], tier=TIER.replace(epochs=1), seed=0, progress=False,
          checkpoint_path=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="another run"):
        train("sovr", x[:100], y[:100], tier=TIER.replace(epochs=1), seed=0, progress=False,
              checkpoint_path=tmp_path / "c.pt")


def test_resume_compares_settings_not_the_tiers_name(small_split, tmp_path):
    # tier small was picked from a search run of the same fields under the name "cpu"
    (x, y), _ = small_split
    one = TIER.replace(epochs=1)
    _, hist = train("at", x[:100], y[:100], tier=one, seed=0, progress=False,
                    checkpoint_path=tmp_path / "c.pt")
    again, hist2 = train("at", x[:100], y[:100], tier=one.replace(name="renamed"), seed=0,
                         progress=False, checkpoint_path=tmp_path / "c.pt")
    assert hist2 == hist  # finished: resumed at its last epoch, nothing trained again
    with pytest.raises(ValueError, match="another run"):
        train("at", x[:100], y[:100], tier=one.replace(name="renamed", lr=0.5), seed=0,
              progress=False, checkpoint_path=tmp_path / "c.pt")


def test_trained_model_loads_the_shipped_checkpoint():
    model, hist = trained_model("at", retrain=False)
    assert not model.training and model.arch == "small_cnn-w16-c10"
    assert len(hist) == 10 and hist[-1]["epoch"] == 10


def test_trained_model_retrains_once_then_resumes(small_split, tmp_path):
    (x, y), _ = small_split
    kw = dict(retrain=True, tier=TIER.replace(epochs=1), runs_dir=tmp_path, progress=False)
    m1, h1 = trained_model("sovr-r0.5", x[:100], y[:100], **kw)
    assert (tmp_path / "sovr-r0.5-s0.pt").exists()
    m2, h2 = trained_model(Run("sovr", value=0.5), x[:100], y[:100], **kw)
    assert h2 == h1  # finished run found: nothing trained again
    # other settings under the same name: the old checkpoint is replaced, not resumed
    m3, h3 = trained_model("sovr-r0.5", x[:100], y[:100], **{**kw, "tier": TIER.replace(epochs=2)})
    assert len(h3) == 2


def test_the_threshold_rule_trains_through_train(small_split):
    (x, y), _ = small_split
    _, hist = train(Run("sovr", "threshold", 100.0), x[:100], y[:100],
                    tier=TIER.replace(epochs=1), progress=False)
    assert hist[0]["switched"] == 1.0   # every margin is below 100: all OVR


def _points(n, seed):
    """Two classes of points in [0, 1]^2, split by the line x0 = 0.5 with a gap of 0.1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g)
    x[:, 0] = torch.where(x[:, 0] < 0.5, x[:, 0] * 0.9, 0.55 + x[:, 0] * 0.9 - 0.45)
    return x, (x[:, 0] > 0.5).long()


def test_fit_trains_an_mlp_on_float_points():
    x, y = _points(512, seed=0)
    xv, yv = _points(128, seed=1)
    tier = get_tier("ci", model="mlp", width=32, depth=2, num_classes=2, epochs=8,
                    batch_size=64, lr=0.1, eps=0.02, alpha=0.005, train_steps=3)
    torch.manual_seed(0)
    model = build_model("mlp", width=32, num_classes=2, depth=2)
    model, hist = fit(model, "at", x, y, tier=tier, x_val=xv, y_val=yv, progress=False)
    assert (predictions(model, xv) == yv).float().mean() > 0.95
    assert hist[-1]["pgd_acc"] > 0.9       # eps 0.02 is well inside the gap of 0.1
    assert x.dtype == torch.float32 and x.shape == (512, 2)   # the points were not changed


def test_finetune_leaves_the_model_unchanged_and_is_seeded(small_split):
    (x, y), _ = small_split
    x, y = x[:60], y[:60]
    torch.manual_seed(0)
    model = build_model("small_cnn", width=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    tier = get_tier("ci", width=4)
    a, log_a = finetune(model, "sovr", x, y, tier=tier, steps=3, batch_size=20, seed=0)
    b, log_b = finetune(model, "sovr", x, y, tier=tier, steps=3, batch_size=20, seed=0)
    c, _ = finetune(model, "sovr", x, y, tier=tier, steps=3, batch_size=20, seed=1)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not model.training
    assert len(log_a) == 3 and log_a == log_b
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in a.state_dict().items())


def test_fit_trains_on_the_tiers_threads_and_restores_the_callers():
    x, y = _points(128, seed=0)
    tier = get_tier("ci", model="mlp", width=8, depth=1, num_classes=2, epochs=2,
                    batch_size=64, eps=0.02, alpha=0.005, train_steps=2, threads=1)
    seen, before = [], torch.get_num_threads()
    model = build_model("mlp", width=8, num_classes=2, depth=1)
    fit(model, "at", x, y, tier=tier, progress=False,
        on_epoch=lambda *_: seen.append(torch.get_num_threads()))
    assert seen == [1, 1]
    assert torch.get_num_threads() == before


class _CountingCompile:
    """Stands in for torch.compile: the module it returns counts its calls per mode."""

    def __init__(self):
        self.calls = {"train": 0, "eval": 0}

    def __call__(self, module):
        calls = self.calls

        class Counted(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self._orig_mod = module

            def forward(self, x):
                calls["train" if self._orig_mod.training else "eval"] += 1
                return self._orig_mod(x)

        return Counted()


def test_fit_compile_covers_the_attack_passes_too(small_split, monkeypatch):
    """compile=True: the update pass and every pass of the training attack run through the
    compiled module (the per-epoch evaluation runs eager)."""
    (x, y), (xv, yv) = small_split
    spy = _CountingCompile()
    monkeypatch.setattr(torch, "compile", spy)
    tier = get_tier("ci", epochs=1, train_steps=3)
    model = build_model("small_cnn", width=8)
    fit(model, "at", x[:200], y[:200], tier=tier, compile=True, progress=False,
        x_val=xv[:20], y_val=yv[:20])
    steps = 200 // tier.batch_size
    assert spy.calls == {"train": steps, "eval": steps * tier.train_steps}


@pytest.mark.slow
def test_fit_compiled_matches_eager_to_float_rounding(small_split):
    (x, y), _ = small_split
    tier = get_tier("ci", epochs=1, train_steps=3)
    runs = {}
    for compile in (False, True):
        torch.manual_seed(0)
        model = build_model("small_cnn", width=8)
        runs[compile] = fit(model, "at", x[:200], y[:200], tier=tier, seed=0, compile=compile,
                            progress=False)
    (eager, h_eager), (compiled, h_comp) = runs[False], runs[True]
    assert h_comp[0]["loss"] == pytest.approx(h_eager[0]["loss"], rel=1e-4)
    # not bit for bit: the compiled kernels round differently, and the attack's sign()
    # turns a rounding difference at a ~0 gradient into a whole step for that pixel
    for (k, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        if a.is_floating_point() and a.norm() > 0:
            assert ((a - b).norm() / a.norm()).item() < 5e-3, k
