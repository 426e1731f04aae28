"""PGD and FGSM as the spec describes them: inside the ball, inside [0, 1], effective."""
import pytest
import torch
import torch.nn.functional as F

from sovr_tutorial import attack_dataset, fgsm, pgd, trades_pgd
from sovr_tutorial.attacks import seeded
from sovr_tutorial.evaluate import accuracy
from sovr_tutorial.tiers import pgd_step_size

EPS = 8 / 255


def linf(a, b):
    return (a - b).abs().flatten(1).amax(1)


@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_stays_in_eps_ball_and_pixel_range(trained_model, eval_batch, loss, random_start):
    x, y = eval_batch
    x_adv = pgd(trained_model, x, y, eps=EPS, alpha=2 / 255, steps=5, loss=loss,
                random_start=random_start)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert linf(x_adv, x).max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_pgd_raises_the_loss_and_lowers_accuracy(trained_model, eval_batch):
    x, y = eval_batch
    clean_acc = accuracy(trained_model, x, y)
    assert clean_acc > 0.3, "the fixture model should beat chance (10%) clearly"
    x_adv = pgd(trained_model, x, y, eps=EPS, alpha=2 / 255, steps=10)
    with torch.no_grad():
        assert F.cross_entropy(trained_model(x_adv), y) > F.cross_entropy(trained_model(x), y) + 0.5
    assert accuracy(trained_model, x_adv, y) < clean_acc - 0.2


def test_more_steps_never_hurt_the_attacker_much(trained_model, eval_batch):
    x, y = eval_batch
    torch.manual_seed(0)
    a1 = accuracy(trained_model, pgd(trained_model, x, y, steps=1, alpha=EPS, random_start=False), y)
    a10 = accuracy(trained_model, pgd(trained_model, x, y, steps=10, random_start=False), y)
    assert a10 <= a1


def test_fgsm_is_pgd_with_one_full_step_and_no_random_start(trained_model, eval_batch):
    x, y = eval_batch
    a = fgsm(trained_model, x, y, eps=EPS)
    b = pgd(trained_model, x, y, eps=EPS, alpha=EPS, steps=1, random_start=False)
    assert torch.equal(a, b)
    # every pixel not clipped by [0, 1] moved by exactly eps
    inside = (x > EPS) & (x < 1 - EPS)
    assert torch.allclose((a - x).abs()[inside], torch.full_like(x[inside], EPS), atol=1e-6)


def test_targeted_pgd_moves_predictions_towards_the_target(trained_model, eval_batch):
    x, y = eval_batch
    target = (y + 1) % 10
    x_adv = pgd(trained_model, x, y, eps=16 / 255, steps=10, targeted=True, target=target)
    with torch.no_grad():
        hit = (trained_model(x_adv).argmax(1) == target).float().mean()
        before = (trained_model(x).argmax(1) == target).float().mean()
    assert hit > before + 0.2


def test_attack_leaves_model_mode_and_parameter_grads_alone(trained_model, eval_batch):
    x, y = eval_batch
    trained_model.zero_grad(set_to_none=True)
    trained_model.train()
    try:
        pgd(trained_model, x, y, steps=2)
        assert trained_model.training
        assert all(p.grad is None for p in trained_model.parameters())
    finally:
        trained_model.eval()


def test_an_attack_gives_every_submodule_back_its_own_mode(trained_model, eval_batch):
    """A BatchNorm frozen (eval) inside a training model stays frozen after any attack."""
    x, y = eval_batch
    frozen = [m for m in trained_model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert frozen, "the fixture model has BatchNorm layers"
    trained_model.train()
    for m in frozen:
        m.eval()
    try:
        for attack in (lambda: pgd(trained_model, x, y, steps=1),
                       lambda: trades_pgd(trained_model, x, steps=1),
                       lambda: attack_dataset(trained_model, x, y, eps=EPS, steps=1)):
            attack()
            assert trained_model.training
            assert not any(m.training for m in frozen)
    finally:
        trained_model.eval()


def test_pgd_returns_gairat_kappa_in_range(trained_model, eval_batch):
    x, y = eval_batch
    x_adv, kappa = pgd(trained_model, x, y, steps=6, return_kappa=True)
    assert kappa.shape == y.shape and kappa.min() >= 0 and kappa.max() <= 6
    # a sample misclassified before the attack starts cannot be counted at step 0
    with torch.no_grad():
        wrong = trained_model(x).argmax(1) != y
    zero_start = pgd(trained_model, x, y, steps=1, random_start=False, return_kappa=True)[1]
    assert torch.equal(zero_start[wrong], torch.zeros_like(zero_start[wrong]))


def test_trades_pgd_stays_in_ball_and_raises_kl(trained_model, eval_batch):
    x, _ = eval_batch
    x_adv = trades_pgd(trained_model, x, eps=EPS, alpha=2 / 255, steps=5)
    assert linf(x_adv, x).max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        p = F.softmax(trained_model(x), 1)
        kl = F.kl_div(F.log_softmax(trained_model(x_adv), 1), p, reduction="batchmean")
    assert kl > 0.05


def test_attack_dataset_is_pgd_batch_by_batch_under_its_seed(trained_model, eval_batch):
    x, y = eval_batch
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    got = attack_dataset(trained_model, x, y, eps=EPS, steps=3, seed=7, batch_size=24)
    assert torch.equal(torch.get_rng_state(), rng), "the caller's random stream is untouched"
    # the same as PGD on each batch in turn, with the random starts drawn after seeding 7
    with seeded(7, "cpu"):
        want = torch.cat([pgd(trained_model, x[i:i + 24], y[i:i + 24], eps=EPS,
                              alpha=pgd_step_size(EPS, 3), steps=3) for i in range(0, 64, 24)])
    assert torch.equal(got, want)
    assert torch.equal(got, attack_dataset(trained_model, x, y, eps=EPS, steps=3, seed=7,
                                           batch_size=24))
    assert not torch.equal(got, attack_dataset(trained_model, x, y, eps=EPS, steps=3, seed=8,
                                               batch_size=24))


def test_attack_dataset_takes_the_step_size_it_is_given(trained_model, eval_batch):
    x, y = eval_batch
    one_step = attack_dataset(trained_model, x, y, eps=EPS, steps=1, alpha=1 / 255, seed=0)
    assert linf(one_step, x).max() <= EPS + 1e-6
    assert attack_dataset(trained_model, x, y, eps=0.0, steps=5).equal(x)


@pytest.mark.parametrize("kwargs, words", [
    (dict(eps=-1 / 255, steps=3), "eps"), (dict(eps=EPS, steps=0), "steps"),
    (dict(eps=EPS, steps=3, alpha=0.0), "alpha"), (dict(eps=EPS, steps=3, loss="dlr"), "loss"),
    (dict(eps=EPS, steps=3, seed=-1), "seed"), (dict(eps=EPS, steps=3, batch_size=0), "batch_size"),
])
def test_attack_dataset_refuses_bad_arguments(trained_model, eval_batch, kwargs, words):
    x, y = eval_batch
    with pytest.raises(ValueError, match=words):
        attack_dataset(trained_model, x, y, **kwargs)
