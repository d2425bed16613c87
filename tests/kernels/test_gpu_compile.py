import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# A directory holding the Triton release of the GPU machines the benchmarks run on (.ci/run
# installs one there); without it only the installed release is checked.
GPU_TRITON = os.environ.get("FASTINFO_GPU_TRITON")
# ptxas may keep one 64-bit value on the stack outside any loop; more is a real spill
MAX_SPILL_BYTES = 8
# every kernel, launched by its op's wrapper through Triton's JIT
KERNELS = {"_info_nll_fwd_kernel", "_info_nll_bwd_kernel", "_sum_partials_kernel", "_mine_fwd_kernel",
           "_mine_combine_kernel", "_mine_bwd_kernel", "_pairwise_lse_kernel", "_pairwise_grad_kernel",
           "_clip_kernel", "_rmsprop_kernel", "_adam_kernel", "_write_row_kernel"}


@pytest.mark.slow
@pytest.mark.parametrize("toolchain", ["installed", "gpu"])
def test_every_kernel_compiles_for_sm90(toolchain):
    """The interpreter accepts kernels the GPU compiler rejects: compile each one for real, at the
    launch parameters its wrapper picks, and check that none spills registers; then make each
    wrapper's launches through Triton's JIT (built, not run), whose checks and argument types the
    interpreter skips."""
    pytest.importorskip("triton.backends.nvidia")
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if toolchain == "gpu":
        if not GPU_TRITON:
            pytest.skip("FASTINFO_GPU_TRITON names no directory holding the GPU machines' Triton")
        env["PYTHONPATH"] = os.pathsep.join([GPU_TRITON, str(root), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-m", "tests.kernels.gpu_compile"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    version, *lines = result.stdout.splitlines()
    assert version.startswith("triton "), result.stdout
    launched = {line.split()[1] for line in lines if line.startswith("launched")}
    assert launched == KERNELS, result.stdout
    # a float64 op's float arguments typed float32 by the JIT (the interpreter keeps them float64)
    assert not [line for line in lines if line.startswith("rounded")], result.stdout
    assert sum(line.startswith("compiled") for line in lines) == 42, result.stdout
    # spills at the layouts the benchmarks time and the wrappers launch (the strided wide-code
    # case may spill a little)
    spills = [line for line in lines
              if int(re.search(r"SPILL=(\d+)", line)[1]) > MAX_SPILL_BYTES and "strided" not in line]
    assert not spills, f"{version}:\n" + "\n".join(spills)
