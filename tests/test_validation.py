"""Bad input gets a clear error that names the argument, never a wrong answer.

One row per mistake a reader can make at the public API; each row says which
exception and which words the message must contain.
"""
import math

import pytest
import torch

import sovr_tutorial as st

X = torch.rand(4, 3, 32, 32)
Y = torch.tensor([0, 1, 2, 3])
LOGITS = torch.randn(4, 10)


def _model():
    torch.manual_seed(0)
    return st.build_model("small_cnn", width=4).eval()


CASES = {
    # attacks
    "pgd eps < 0": (lambda: st.pgd(_model(), X, Y, eps=-0.1), ValueError, "eps"),
    "pgd eps > 1 (8 instead of 8/255)": (lambda: st.pgd(_model(), X, Y, eps=8), ValueError, "eps"),
    "pgd steps < 1": (lambda: st.pgd(_model(), X, Y, steps=0), ValueError, "steps"),
    "pgd fractional steps": (lambda: st.pgd(_model(), X, Y, steps=2.5), TypeError, "steps"),
    "pgd step size 0": (lambda: st.pgd(_model(), X, Y, alpha=0.0), ValueError, "alpha"),
    "pgd step size < 0": (lambda: st.pgd(_model(), X, Y, alpha=-2 / 255), ValueError, "alpha"),
    "pgd unknown loss": (lambda: st.pgd(_model(), X, Y, loss="dlr"), ValueError, "loss"),
    "pgd images above 1 (0-255 pixels)": (lambda: st.pgd(_model(), X * 255, Y), ValueError, "[0, 1]"),
    "pgd normalised images (negative)": (lambda: st.pgd(_model(), X - 0.5, Y), ValueError, "[0, 1]"),
    "pgd uint8 images": (lambda: st.pgd(_model(), (X * 255).byte(), Y), TypeError, "float"),
    "pgd labels of wrong length": (lambda: st.pgd(_model(), X, Y[:3]), ValueError, "y"),
    "pgd targeted without target": (lambda: st.pgd(_model(), X, Y, targeted=True), ValueError, "target"),
    "fgsm eps nan": (lambda: st.fgsm(_model(), X, Y, eps=math.nan), ValueError, "eps"),
    "trades_pgd eps > 1": (lambda: st.trades_pgd(_model(), X, eps=2.0), ValueError, "eps"),
    # losses
    "sovr ratio > 1": (lambda: st.sovr_loss(LOGITS, Y, value=1.5), ValueError, "ratio"),
    "sovr ratio < 0": (lambda: st.sovr_loss(LOGITS, Y, value=-0.1), ValueError, "ratio"),
    "sovr threshold nan": (lambda: st.sovr_loss(LOGITS, Y, "threshold", math.nan), ValueError, "threshold"),
    "sovr threshold inf": (lambda: st.sovr_loss(LOGITS, Y, "threshold", math.inf), ValueError, "threshold"),
    "sovr unknown rule": (lambda: st.sovr_select(Y.float(), "top", 0.4), ValueError, "rule"),
    "ce logits/labels mismatch": (lambda: st.ce_loss(LOGITS, Y[:2]), ValueError, "y"),
    "ovr labels out of range": (lambda: st.ovr_loss(LOGITS, torch.tensor([0, 1, 2, 10])), ValueError, "y"),
    "ovr negative label": (lambda: st.ovr_loss(LOGITS, torch.tensor([0, -1, 2, 3])), ValueError, "y"),
    "ce NaN logits": (lambda: st.ce_loss(torch.full((4, 10), math.nan), Y), ValueError, "NaN"),
    "sovr inf logits": (lambda: st.sovr_loss(LOGITS.clone().index_fill_(0, torch.tensor([1]), math.inf), Y), ValueError, "inf"),
    "ce 1-D logits": (lambda: st.ce_loss(torch.randn(10), Y), ValueError, "logits"),
    "ce float labels": (lambda: st.ce_loss(LOGITS, Y.float()), TypeError, "y"),
    "loss unknown reduction": (lambda: st.ce_loss(LOGITS, Y, reduction="avg"), ValueError, "reduction"),
    "trades logits shape mismatch": (lambda: st.trades_loss(LOGITS, LOGITS[:2], Y), ValueError, "logits"),
    "gairat kappa above steps": (lambda: st.gairat_weights(torch.tensor([0, 11]), 10), ValueError, "kappa"),
    "logit_margin NaN": (lambda: st.logit_margin(torch.full((4, 10), math.nan), Y), ValueError, "NaN"),
    "margin_grad_norm p=3": (lambda: st.margin_grad_norm(_model(), X, Y, p=3), ValueError, "p"),
    # training, tiers, models
    "unknown method": (lambda: st.train("madry", (X * 255).byte(), Y, tier="ci"), ValueError, "method"),
    "unknown tier": (lambda: st.get_tier("laptop"), ValueError, "tier"),
    "unknown model": (lambda: st.build_model("resnet50"), ValueError, "model"),
    "train 3-D input": (lambda: st.train("at", X[:, 0], Y, tier="ci"), TypeError, "x_train"),
    "train float images": (lambda: st.train("at", X, Y, tier="ci"), TypeError, "uint8"),
    "train sovr ratio 2": (lambda: st.train("sovr-r2", (X * 255).byte(), Y, tier="ci"), ValueError, "ratio"),
    "train points outside [0, 1]": (lambda: st.train("at", torch.rand(4, 2) + 1, Y, tier="ci"), ValueError, "[0, 1]"),
    "train negative seed": (lambda: st.train("at", (X * 255).byte(), Y, tier="ci", seed=-1), ValueError, "seed"),
    # data
    "data path that does not exist": (lambda: st.load_cifar10("test", "/no/such/folder"), ValueError, "/no/such/folder"),
    "data unknown split": (lambda: st.load_cifar10("valid", "/tmp"), ValueError, "split"),
    "subset larger than the data": (lambda: st.balanced_subset((X * 255).byte(), Y, 10), ValueError, "n"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_refused_with_a_message_naming_it(case):
    fn, exc, words = CASES[case]
    with pytest.raises(exc) as info:
        fn()
    assert words in str(info.value), f"{case}: message {str(info.value)!r} should mention {words!r}"


def test_data_folder_with_the_wrong_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not CIFAR")
    with pytest.raises(ValueError, match="SOVR_TUTORIAL_DATA"):
        st.load_cifar10("test", tmp_path)


CLI_CASES = {
    "runner unknown tier": (["--tier", "laptop"], "tier"),
    "runner unknown method": (["--methods", "at,madry"], "method"),
    "runner negative seed": (["--seeds", "-1"], "seed"),
    "runner sovr ratio 1.5": (["--methods", "sovr-r0.2,sovr-r1.5"], "ratio"),
    "runner unreadable run option": (["--methods", "trades-gamma2"], "gamma2"),
    "runner unknown tier field": (["--set", "size=3"], "FIELD"),
    "runner zero epochs": (["--epochs", "0"], "epochs"),
    "runner zero learning rate": (["--lr", "0"], "lr"),
    "runner data path missing": (["--data", "/no/such/folder"], "/no/such/folder"),
}


@pytest.mark.parametrize("case", list(CLI_CASES), ids=list(CLI_CASES))
def test_experiment_runner_command_line_refuses_bad_arguments(case, capsys):
    from sovr_tutorial.lab.experiments import main
    argv, words = CLI_CASES[case]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert words in capsys.readouterr().err
