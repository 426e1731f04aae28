"""The benchmark scripts run (here on CPU, tiny) and print what they say; no timings are
asserted. The GPU script counts FLOPs the way it says."""
import re

import pytest
import torch

import sovr_tutorial as st
from benchmarks.gpu import CountFlops, main, step_flops


def test_an_at_step_costs_about_23_forward_passes(small_split):
    """PGD-10 asks 10 forwards + 10 input-only backwards (each about one forward), the update
    one forward + a backward for inputs and weights (about two): 23 forwards in all."""
    (x, y), _ = small_split
    tier = st.get_tier("gpu", model="small_cnn", width=8)
    model = st.build_model("small_cnn", width=8)
    with CountFlops() as counter:
        model(x[:tier.batch_size].float() / 255)
    forward = counter.total
    assert forward > 0
    ratio = step_flops(tier, x[:tier.batch_size], y[:tier.batch_size], torch.device("cpu")) / forward
    assert 21 < ratio < 25, ratio


def test_the_gpu_benchmark_prints_its_figures_on_cpu(data_dir, capsys):
    assert main(["--device", "cpu", "--model", "small_cnn", "--images", "256", "--epochs", "1",
                 "--peak-size", "256", "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"measured float32 matmul peak \(256\^2\): [\d.]+ TFLOP/s", out)
    assert re.search(r"one PGD-10 AT step, small_cnn, batch 128: [\d.]+ TFLOP", out)
    assert "2 steps per epoch of 256 images" in out
    assert re.search(r"epoch 1: +[\d.]+ s, +\d+ img/s, +[\d.]+ TFLOP/s = +[\d.]+% of the measured peak", out)


@pytest.mark.slow
def test_make_bench_prints_the_interleaved_ratios(data_dir, monkeypatch, capsys):
    from benchmarks.run import main as bench_main
    monkeypatch.setenv("SOVR_TUTORIAL_DATA", str(data_dir))
    bench_main(["--rounds", "2", "--steps", "1", "--skip-aa", "--variants", "package fp32"])
    out = capsys.readouterr().out
    assert "2 interleaved rounds of 1 steps per loop" in out
    assert re.search(r"package fp32 +: median +[\d.]+ img/s; ratio to the reference median "
                     r"[\d.]+x \(IQR [\d.]+-[\d.]+, range [\d.]+-[\d.]+, 2 rounds\)", out)


def test_the_steps_benchmark_runs_the_loop_with_and_without_folding(data_dir, monkeypatch):
    from benchmarks import steps
    monkeypatch.setenv("SOVR_TUTORIAL_DATA", str(data_dir))
    seen = []
    real = steps.train_step

    def spy(run, model, opt, x, y, *, tier, epoch, attack_model=None):
        seen.append((tier.fold_bn, type(attack_model).__name__, len(y)))
        return real(run, model, opt, x, y, tier=tier, epoch=epoch, attack_model=attack_model)

    monkeypatch.setattr(steps, "train_step", spy)
    assert steps.main(["--tier", "ci", "--steps", "1"]) == 0
    assert steps.main(["--tier", "ci", "--steps", "1", "--fold-bn"]) == 0
    assert seen == [(False, "SmallCNN", 100), (True, "FoldedBN", 100)]
