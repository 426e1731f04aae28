"""The multi-GPU path, tested on CPU: torchrun, 2 processes, gloo, DistributedDataParallel."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent("""
    import sys
    import torch, torch.distributed as dist
    import sovr_tutorial as st
    from sovr_tutorial.train import distributed_context

    dist.init_process_group("gloo")
    rank, world = distributed_context()
    x, y, _ = st.load_cifar10("test", sys.argv[1])
    x, y = st.balanced_subset(x, y, 200, seed=0)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    tier = st.get_tier("ci", width=8, epochs=2, batch_size=50, train_steps=2)
    model, hist = st.train("trades", x[perm], y[perm], tier=tier, seed=0, progress=False,
                           checkpoint_path=sys.argv[2] + "/ckpt.pt")
    torch.save({"world": world, "state": model.state_dict(),
                "losses": [h["loss"] for h in hist]}, f"{sys.argv[2]}/rank{rank}.pt")
    dist.destroy_process_group()
""")


def test_two_process_gloo_training_keeps_ranks_in_sync(tmp_path, data_dir):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", str(script), str(data_dir),
           str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    # DDP all-reduces gradients, so both ranks hold the same parameters after every step
    for name, value in r0["state"].items():
        if "running" in name or "num_batches" in name:
            continue  # BatchNorm statistics are per rank (DDP broadcasts rank 0's on forward)
        assert torch.allclose(value, r1["state"][name], atol=1e-6), name
    assert r0["losses"][-1] < r0["losses"][0]
    assert (tmp_path / "ckpt.pt").exists()  # rank 0 wrote the checkpoint
