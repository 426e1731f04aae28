"""Nothing is lost when a run is killed: SIGKILL from outside, restart, same weights.

A real training process (the package's loop on real CIFAR-10 images) is killed at
several points (before its first checkpoint, in the middle of an epoch, and in the
middle of writing a checkpoint) and restarted with the same command each time. It must
end with weights bit-identical to an uninterrupted run, and no kill may leave a
checkpoint that fails to load.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from sovr_tutorial import load_checkpoint

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent("""
    import os, sys, time
    import torch
    import sovr_tutorial as st

    marker = os.environ.get("WRITE_MARKER")
    if marker:
        # announce every checkpoint write and linger inside it (before fsync and rename),
        # so the test can kill the process while the write is under way
        real_fsync = os.fsync
        def lingering_fsync(fd):
            with open(marker, "a") as f:
                f.write("w")
            time.sleep(3.0)
            real_fsync(fd)
        os.fsync = lingering_fsync

    data, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
    x, y, _ = st.load_cifar10("test", data)
    x, y = st.balanced_subset(x, y, 400, seed=0)
    perm = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    tier = st.get_tier("ci", width=8, epochs=4, batch_size=50, train_steps=3)
    model, hist = st.train("sovr-r0.5", x[perm], y[perm], tier=tier, seed=7,
                           checkpoint_path=ckpt, progress=False,
                           on_epoch=lambda e, r, m: print("epoch", e, flush=True))
    torch.save(model.state_dict(), out)
""")


def _start(tmp_path, data_dir, ckpt, out, **env):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    full_env = {**os.environ, "OMP_NUM_THREADS": "2", **env}
    return subprocess.Popen([sys.executable, str(script), str(data_dir), str(ckpt), str(out)],
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait_for(predicate, proc, timeout=120):
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"child ended early:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the child")
        time.sleep(0.05)


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _epoch(ckpt):
    return load_checkpoint(ckpt)["epoch"] if ckpt.exists() else 0


def test_killed_runs_resume_to_bit_identical_weights(tmp_path, data_dir):
    ref_out = tmp_path / "ref.pt"
    ref = _start(tmp_path, data_dir, tmp_path / "ref_ckpt.pt", ref_out)
    assert ref.wait(timeout=600) == 0, ref.stdout.read()

    ckpt, out, marker = tmp_path / "run.pt", tmp_path / "run_out.pt", tmp_path / "writing"
    faults = []

    # 1. killed before its first checkpoint exists
    proc = _start(tmp_path, data_dir, ckpt, out)
    time.sleep(1.0)
    _kill(proc)
    faults.append(("before first checkpoint", _epoch(ckpt)))

    # 2. killed in the middle of an epoch, after a checkpoint was written
    proc = _start(tmp_path, data_dir, ckpt, out)
    _wait_for(lambda: ckpt.exists(), proc)
    time.sleep(0.3)
    _kill(proc)
    faults.append(("mid-epoch", _epoch(ckpt)))  # loads: not corrupted

    # 3. killed while writing a checkpoint (between the temp file's write and its rename)
    done_before = _epoch(ckpt)
    proc = _start(tmp_path, data_dir, ckpt, out, WRITE_MARKER=str(marker))
    _wait_for(lambda: marker.exists(), proc)
    time.sleep(0.5)
    _kill(proc)
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir()), \
        "the kill should have landed inside a checkpoint write"
    assert _epoch(ckpt) == done_before, "the half-written checkpoint must not replace the old"
    faults.append(("during checkpoint write", _epoch(ckpt)))

    # 4. the same command, uninterrupted, finishes the run
    proc = _start(tmp_path, data_dir, ckpt, out)
    assert proc.wait(timeout=600) == 0, proc.stdout.read()
    assert _epoch(ckpt) == 4

    ref_w, run_w = torch.load(ref_out, weights_only=True), torch.load(out, weights_only=True)
    for name, value in ref_w.items():
        assert torch.equal(value, run_w[name]), f"{name} differs after {faults}"
