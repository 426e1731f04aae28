"""The one training loop: every method learns, and a resumed run continues identically."""
import pytest
import torch

from sovr_tutorial import METHODS, get_tier, load_checkpoint, train
from sovr_tutorial.train import MethodOptions, method_loss

TIER = get_tier("ci", width=8, batch_size=100, train_steps=3)


def _fixed_batch_loss(method, model, x, y, opts):
    torch.manual_seed(123)  # same PGD random start before and after training
    loss, stats = method_loss(method, model, x, y, tier=TIER, epoch=99, opts=opts)
    return loss.item(), stats


@pytest.mark.parametrize("method", METHODS)
def test_a_few_steps_reduce_the_loss(method, small_split):
    (x, y), _ = small_split
    x, y = x[:200].float() / 255, y[:200]
    torch.manual_seed(0)
    from sovr_tutorial import build_model
    model = build_model("small_cnn", width=8).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opts = MethodOptions(sovr_ratio=0.5)
    before, stats = _fixed_batch_loss(method, model, x, y, opts)
    for step in range(25):
        xb, yb = x[(step % 2) * 100:(step % 2 + 1) * 100], y[(step % 2) * 100:(step % 2 + 1) * 100]
        loss, _ = method_loss(method, model, xb, yb, tier=TIER, epoch=99, opts=opts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, _ = _fixed_batch_loss(method, model, x, y, opts)
    assert after < before - 0.05, f"{method}: loss {before:.3f} -> {after:.3f}"
    if method == "sovr":
        assert stats["switched"] == pytest.approx(0.5)


def test_history_records_what_the_issue_asks_for(small_split):
    (x, y), (xv, yv) = small_split
    model, hist = train("sovr", x[:300], y[:300], tier=TIER.replace(epochs=2), x_val=xv[:100],
                        y_val=yv[:100], seed=0, progress=False, sovr_ratio=0.4)
    assert [h["epoch"] for h in hist] == [1, 2]
    for key in ("loss", "lr", "train_acc", "clean_acc", "pgd_acc", "adv_margin_median",
                "switched", "seconds"):
        assert key in hist[-1], key
    assert 0.35 <= hist[-1]["switched"] <= 0.45
    assert hist[1]["lr"] < hist[0]["lr"], "the step schedule should have decayed the lr"
    assert not model.training


def test_same_seed_same_numbers(small_split):
    (x, y), _ = small_split
    runs = [train("at", x[:200], y[:200], tier=TIER.replace(epochs=1), seed=3, progress=False)
            for _ in range(2)]
    (m1, h1), (m2, h2) = runs
    assert h1[0]["loss"] == h2[0]["loss"]
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["at", "gairat"])
def test_resume_from_checkpoint_continues_identically(method, small_split, tmp_path):
    (x, y), (xv, yv) = small_split
    x, y = x[:200], y[:200]
    tier = TIER.replace(epochs=3, gairat_burn_in=1)
    kw = dict(tier=tier, x_val=xv[:50], y_val=yv[:50], seed=1, progress=False)
    ref, ref_hist = train(method, x, y, checkpoint_path=tmp_path / "ref.pt", **kw)

    def stop_after_2(epoch, record):
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


def test_trained_model_loads_the_shipped_checkpoint():
    from sovr_tutorial import trained_model
    model, hist = trained_model("at", retrain=False)
    assert not model.training and model.arch == "small_cnn-w16-c10"
    assert len(hist) == 10 and hist[-1]["epoch"] == 10


def test_trained_model_retrains_once_then_resumes(small_split, tmp_path):
    from sovr_tutorial import trained_model
    (x, y), _ = small_split
    kw = dict(retrain=True, tier=TIER.replace(epochs=1), runs_dir=tmp_path, progress=False)
    m1, h1 = trained_model("sovr", x[:100], y[:100], sovr_ratio=0.5, **kw)
    assert (tmp_path / "sovr-r0.5-s0.pt").exists()
    m2, h2 = trained_model("sovr", x[:100], y[:100], sovr_ratio=0.5, **kw)
    assert h2 == h1  # finished run found: nothing trained again
    # other settings under the same name: the old checkpoint is replaced, not resumed
    m3, h3 = trained_model("sovr", x[:100], y[:100], sovr_ratio=0.5,
                           **{**kw, "tier": TIER.replace(epochs=2)})
    assert len(h3) == 2
