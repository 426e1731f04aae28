"""Evaluation as docs/method.md describes it: accuracy, PGD with restarts, AutoAttack.

AutoAttack here is the real ``pyautoattack`` on a tiny conv net (8x8 images, so that
CPU runs take seconds); only the GitHub-API dispatch test uses a stand-in class, because
the GitHub package cannot be installed here.
"""
import json
import sys
import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from sovr_tutorial.attacks import attack_dataset, pgd
from sovr_tutorial.autoattack import (CUSTOM_ATTACKS, STANDARD_ATTACKS, autoattack_eval,
                                      load_autoattack)
from sovr_tutorial.evaluate import accuracy, pgd_aa_gap, pgd_accuracy, predictions

EPS = 16 / 255       # large for CIFAR, right for this toy: some samples break, some survive
N_FLIPPED = 2        # labels flipped on purpose: these samples are wrong before any attack


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on shared cores run faster (and steadier) single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy_data(n, seed):
    """10 classes, each a fixed random 3x8x8 colour pattern plus Gaussian pixel noise."""
    protos = torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(123)) * 0.5 + 0.25
    y = torch.arange(n) % 10
    noise = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return (protos[y] + 0.25 * noise).clamp(0, 1), y


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.head(F.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def toy_model():
    x, y = toy_data(500, seed=0)
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        i = torch.randint(0, len(x), (50,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def toy_test():
    x, y = toy_data(16, seed=1)
    y[:N_FLIPPED] = (y[:N_FLIPPED] + 1) % 10
    return x, y


@pytest.fixture(scope="module")
def aa_custom_run(toy_model, toy_test):
    """One real custom AutoAttack run in chunks of 4, shared by the checks below.

    Returns the result and the number of gradient forward passes it took."""
    x, y = toy_test
    model = Fuse(toy_model)    # only counts
    model.train()              # the caller's mode must come back unchanged
    rng = torch.get_rng_state()
    result = autoattack_eval(model, x, y, eps=EPS, version="custom", batch_size=4,
                             progress=False)
    assert model.training, "autoattack_eval must restore train mode"
    assert torch.equal(torch.get_rng_state(), rng), "the caller's RNG stream must be untouched"
    model.eval()
    return result, model.grad_calls


@pytest.fixture(scope="module")
def aa_custom(aa_custom_run):
    return aa_custom_run[0]


class Fuse(nn.Module):
    """Wraps a model, counts forward passes and, once armed, raises KeyboardInterrupt
    (a notebook's "interrupt kernel") on the ``fuse``-th pass that needs an input
    gradient, i.e. inside an attack rather than in a clean or checking pass."""

    def __init__(self, model, fuse=None):
        super().__init__()
        self.model, self.fuse, self.grad_calls, self.calls = model, fuse, 0, 0

    def forward(self, x):
        self.calls += 1
        if x.requires_grad:
            self.grad_calls += 1
            if self.fuse is not None and self.grad_calls >= self.fuse:
                raise KeyboardInterrupt("simulated kill")
        return self.model(x)


# --------------------------------------------------------------------------- accuracy / PGD

def test_accuracy_counts_correct_predictions_and_restores_mode(toy_model, toy_test):
    x, y = toy_test
    with torch.no_grad():
        expected = (toy_model(x).argmax(1) == y).float().mean().item()
    toy_model.train()
    assert accuracy(toy_model, x, y, batch_size=5) == pytest.approx(expected)
    assert toy_model.training
    toy_model.eval()
    assert expected <= 1 - N_FLIPPED / len(y), "flipped labels must count as errors"


def test_pgd_accuracy_is_at_most_clean_and_restarts_never_raise_it(toy_model, toy_test):
    x, y = toy_test
    clean = accuracy(toy_model, x, y)
    rng = torch.get_rng_state()
    one = pgd_accuracy(toy_model, x, y, eps=EPS, alpha=EPS / 4, steps=5, restarts=1)
    three = pgd_accuracy(toy_model, x, y, eps=EPS, alpha=EPS / 4, steps=5, restarts=3)
    assert torch.equal(torch.get_rng_state(), rng)
    assert 0.0 <= three <= one <= clean
    assert one < clean, "an eps of 16/255 must break some samples of this toy model"
    assert pgd_accuracy(toy_model, x, y, eps=0.0, steps=2) == pytest.approx(clean)
    # the same seed gives the same number
    assert pgd_accuracy(toy_model, x, y, eps=EPS, alpha=EPS / 4, steps=5, restarts=1) == one


def test_one_restart_is_the_accuracy_on_the_attacked_data_set(toy_model, toy_test):
    x, y = toy_test
    x_adv = attack_dataset(toy_model, x, y, eps=EPS, steps=5, seed=4, batch_size=5)
    robust = (predictions(toy_model, x) == y) & (predictions(toy_model, x_adv) == y)
    assert pgd_accuracy(toy_model, x, y, eps=EPS, steps=5, seed=4, batch_size=5) == \
        pytest.approx(robust.float().mean().item())


def test_pgd_accuracy_margin_loss_and_validation(toy_model, toy_test):
    x, y = toy_test
    margin = pgd_accuracy(toy_model, x, y, eps=EPS, steps=3, loss="margin")
    assert margin <= accuracy(toy_model, x, y)
    with pytest.raises(ValueError, match="loss"):
        pgd_accuracy(toy_model, x, y, loss="hinge")
    with pytest.raises(ValueError, match="restarts"):
        pgd_accuracy(toy_model, x, y, restarts=0)
    with pytest.raises(ValueError, match="eps"):
        pgd_accuracy(toy_model, x, y, eps=8)


def test_pgd_aa_gap():
    assert pgd_aa_gap(0.52, 0.47) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="aa_acc"):
        pgd_aa_gap(0.5, 47.0)


# --------------------------------------------------------------------------- AutoAttack

def test_custom_autoattack_result_is_consistent(aa_custom, toy_model, toy_test):
    r = aa_custom
    x, y = toy_test
    assert r["backend"] == "pyautoattack"
    assert r["version"] == "custom" and r["label"] == "custom (APGD-CE + APGD-T)"
    assert r["attacks"] == list(CUSTOM_ATTACKS) == list(r["per_attack"])
    assert r["n"] == len(y) and r["eps"] == pytest.approx(EPS)
    assert r["clean"] == pytest.approx(accuracy(toy_model, x, y))
    # robust never above clean; every stage can only remove robust samples
    accs = [r["clean"]] + list(r["per_attack"].values())
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert r["robust"] == accs[-1]
    assert 0 < r["robust"] < r["clean"], "the toy eps should break some, not all, samples"
    # attribution agrees with the accuracies
    bb = r["broken_by"]
    assert len(bb) == r["n"]
    assert set(bb) <= {None, "clean", *CUSTOM_ATTACKS}
    assert bb[:N_FLIPPED] == ["clean"] * N_FLIPPED
    assert bb.count("clean") == round((1 - r["clean"]) * r["n"])
    assert bb.count(None) == round(r["robust"] * r["n"])
    survived = r["n"] - bb.count("clean")
    for attack, acc in r["per_attack"].items():
        survived -= bb.count(attack)
        assert survived == round(acc * r["n"]), attack
    assert all(p.grad is None for p in toy_model.parameters()), "no stray gradients"
    assert all(p.requires_grad for p in toy_model.parameters()), "parameters unfrozen again"


def test_autoattack_is_at_least_as_strong_as_pgd_here(aa_custom, toy_model, toy_test):
    """Not a theorem, but APGD-CE alone (100 steps) beats PGD-5 on this toy model."""
    x, y = toy_test
    pgd5 = pgd_accuracy(toy_model, x, y, eps=EPS, alpha=EPS / 4, steps=5)
    assert aa_custom["robust"] <= pgd5
    assert pgd_aa_gap(pgd5, aa_custom["robust"]) >= 0


def test_eps_zero_gives_robust_equal_clean(toy_model, toy_test):
    x, y = toy_test
    r = autoattack_eval(toy_model, x, y, eps=0.0, version="custom", batch_size=16,
                        progress=False)
    assert r["robust"] == r["clean"]
    assert list(r["per_attack"].values()) == [r["clean"]] * len(CUSTOM_ATTACKS)
    assert set(r["broken_by"]) <= {None, "clean"}


def test_resume_after_interrupt_gives_same_result(aa_custom_run, toy_model, toy_test,
                                                  tmp_path):
    reference, grad_calls = aa_custom_run
    x, y = toy_test
    kw = dict(eps=EPS, version="custom", batch_size=4, progress=False, state_path=tmp_path)
    # APGD-T, the last stage, takes 9 targets x 100 steps = ~900 gradient passes per
    # chunk: a kill 300 passes before the end lands inside its last chunk
    model = Fuse(toy_model, fuse=grad_calls - 300)
    with pytest.raises(KeyboardInterrupt):
        autoattack_eval(model, x, y, **kw)
    state = json.loads((tmp_path / "autoattack_state.json").read_text())
    assert state["done"] == ["apgd-ce"], state["done"]
    assert state["current"] == {"attack": "apgd-t", "chunks_done": 1}, \
        "the toy setup should leave APGD-T with two chunks, one of them finished"

    model.fuse, model.grad_calls = None, 0
    resumed = autoattack_eval(model, x, y, **kw)
    assert resumed["resumed"] and resumed["skipped_stages"] == ["apgd-ce"]
    assert 0 < model.grad_calls < grad_calls / 2, "only the unfinished chunk is attacked again"
    for key in ("clean", "robust", "per_attack", "broken_by", "attacks", "label"):
        assert resumed[key] == reference[key], key   # same as the uninterrupted run

    # a finished evaluation is read back without a single forward pass
    model.calls = 0
    again = autoattack_eval(model, x, y, **kw)
    assert again["skipped_stages"] == list(CUSTOM_ATTACKS) and again["resumed"]
    assert model.calls == 0
    for key in ("clean", "robust", "per_attack", "broken_by"):
        assert again[key] == reference[key], key


def test_state_of_another_evaluation_is_refused(toy_model, toy_test, tmp_path):
    x, y = toy_test
    prefix = tmp_path / "run"
    autoattack_eval(toy_model, x[:4], y[:4], eps=0.0, version="custom", attacks=["apgd-ce"],
                    state_path=prefix, progress=False)
    assert (tmp_path / "run.autoattack.json").is_file()
    with pytest.raises(ValueError, match="state_path"):
        autoattack_eval(toy_model, x[:4], y[:4], eps=1 / 255, version="custom",
                        attacks=["apgd-ce"], state_path=prefix, progress=False)


# --------------------------------------------------------------------------- GitHub API

class GitHubStyleAutoAttack:
    """API-dispatch stand-in with the signature of fra31/auto-attack's ``AutoAttack``
    (``bs=``, ``attacks_to_run`` attribute, returns only x_adv, prints its messages).
    It is not AutoAttack: "apgd-ce" is a real 1-step PGD from this package and every
    other name a real 10-step margin PGD."""

    calls = []
    constructed = []

    def __init__(self, model, norm='Linf', eps=.3, seed=None, verbose=True,
                 attacks_to_run=[], version='standard', is_tf_model=False,
                 device='cuda', log_path=None):
        if version != "custom" and attacks_to_run != []:
            raise ValueError("attacks_to_run will be overridden unless you use version='custom'")
        self.model, self.epsilon, self.attacks_to_run = model, eps, list(attacks_to_run)
        self.constructed.append(dict(norm=norm, eps=eps, seed=seed, version=version,
                                     device=str(device), verbose=verbose))
        if version == "standard":
            self.attacks_to_run = ["apgd-ce", "apgd-t", "fab-t", "square"]

    def run_standard_evaluation(self, x_orig, y_orig, bs=250, return_labels=False):
        self.calls.append(dict(bs=bs, attacks=list(self.attacks_to_run), n=len(x_orig)))
        print("initial accuracy: (printed by the GitHub package)")
        x_adv = x_orig.clone()
        for attack in self.attacks_to_run:
            # a deliberately weak first stage, so that the second one has work left
            if attack == "apgd-ce":
                steps, alpha, loss = 1, self.epsilon / 2, "ce"
            else:
                steps, alpha, loss = 10, self.epsilon / 4, "margin"
            for i in range(0, len(x_orig), bs):
                x_adv[i:i + bs] = pgd(self.model, x_orig[i:i + bs], y_orig[i:i + bs],
                                      eps=self.epsilon, alpha=alpha, steps=steps,
                                      loss=loss)
        return (x_adv, None) if return_labels else x_adv


def test_github_backend_dispatch(monkeypatch, toy_model, toy_test, capsys):
    """API dispatch only: the GitHub keywords (bs=, attacks_to_run, verbose) are used."""
    module = types.ModuleType("autoattack")
    module.AutoAttack = GitHubStyleAutoAttack
    monkeypatch.setitem(sys.modules, "pyautoattack", None)    # "not installed"
    monkeypatch.setitem(sys.modules, "autoattack", module)
    GitHubStyleAutoAttack.calls.clear()
    GitHubStyleAutoAttack.constructed.clear()
    assert load_autoattack() == (GitHubStyleAutoAttack, "autoattack")

    x, y = toy_test
    with pytest.warns(RuntimeWarning, match="printed by the GitHub package"):
        r = autoattack_eval(toy_model, x, y, eps=EPS, version="custom", batch_size=8, seed=3,
                            progress=False)
    assert r["backend"] == "autoattack"
    assert GitHubStyleAutoAttack.constructed == [dict(norm="Linf", eps=EPS, seed=3,
                                                      version="standard", device="cpu",
                                                      verbose=False)]
    calls = GitHubStyleAutoAttack.calls
    assert calls and all(c["bs"] == 8 and c["n"] <= 8 for c in calls)
    assert [c["attacks"] for c in calls] == sorted([c["attacks"] for c in calls],
                                                   key=lambda a: CUSTOM_ATTACKS.index(a[0]))
    assert {tuple(c["attacks"]) for c in calls} <= {("apgd-ce",), ("apgd-t",)}
    # both stages really attacked, and each broken sample is credited to its stage
    pa, bb, n = r["per_attack"], r["broken_by"], r["n"]
    assert r["clean"] > pa["apgd-ce"] > pa["apgd-t"] == r["robust"]
    assert bb.count("apgd-ce") == round((r["clean"] - pa["apgd-ce"]) * n)
    assert bb.count("apgd-t") == round((pa["apgd-ce"] - pa["apgd-t"]) * n)
    assert bb.count(None) == round(r["robust"] * n)
    # the printed chatter was kept for the result, not shown
    assert "printed by the GitHub package" in " ".join(r["warnings"])
    assert "printed by the GitHub package" not in capsys.readouterr().out


def test_missing_autoattack_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    monkeypatch.setitem(sys.modules, "autoattack", None)
    with pytest.raises(ImportError, match="pip install pyautoattack"):
        load_autoattack()


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kwargs, name", [
    (dict(eps=-0.1), "eps"),
    (dict(eps=2), "eps"),
    (dict(version="fast"), "version"),
    (dict(batch_size=0), "batch_size"),
    (dict(version="standard", attacks=["apgd-ce"]), "attacks"),
    (dict(version="custom", attacks=["apgd-cw"]), "attacks"),
    (dict(version="custom", attacks=[]), "attacks"),
])
def test_autoattack_rejects_bad_arguments(toy_model, toy_test, kwargs, name):
    x, y = toy_test
    with pytest.raises(ValueError, match=name):
        autoattack_eval(toy_model, x, y, progress=False, **kwargs)


def test_autoattack_rejects_bad_images_and_labels(toy_model, toy_test):
    x, y = toy_test
    with pytest.raises(ValueError, match=r"\bx\b.*\[0, 1\]"):
        autoattack_eval(toy_model, x * 255, y, progress=False)
    with pytest.raises(ValueError, match=r"\bx\b.*\[0, 1\]"):
        autoattack_eval(toy_model, x - 0.5, y, progress=False)
    with pytest.raises(ValueError, match=r"\by\b"):
        autoattack_eval(toy_model, x, y[:-1], progress=False)
    with pytest.raises(ValueError, match=r"\by\b"):
        accuracy(toy_model, x, y + 10)


def test_pyautoattack_is_preferred():
    cls, backend = load_autoattack()
    assert backend == "pyautoattack" and cls.__module__.startswith("pyautoattack")


@pytest.mark.slow
def test_standard_autoattack_runs_all_four_stages(toy_model, toy_test):
    x, y = toy_test
    r = autoattack_eval(toy_model, x[:6], y[:6], eps=4 / 255, version="standard",
                        progress=False)
    assert r["attacks"] == list(STANDARD_ATTACKS) == list(r["per_attack"])
    assert r["label"].startswith("AutoAttack standard")
    accs = [r["clean"]] + list(r["per_attack"].values())
    assert all(a >= b for a, b in zip(accs, accs[1:]))
    assert r["broken_by"].count(None) == round(r["robust"] * r["n"])
    # FAB calls backward(): the adapter must keep that off the caller's parameters
    assert all(p.grad is None and p.requires_grad for p in toy_model.parameters())
