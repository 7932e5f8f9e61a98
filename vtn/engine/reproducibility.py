"""The reproducibility switches of a process: CUDNN_BENCHMARK and DETERMINISTIC.

`apply_reproducibility(cfg)` runs once in every process of a job, before anything touches CUDA (launch_job calls
it first in the launching process, whose environment spawned workers inherit, and again in every worker, since
torch's flags are per process). DETERMINISTIC sets CUBLAS_WORKSPACE_CONFIG, which cuBLAS reads when it creates its
first handle, so the variable has to be in the environment before that.
"""

import logging
import os

import torch

logger = logging.getLogger(__name__)

# cuBLAS's documented setting for reproducible results (":16:8" also works, with less workspace and less speed)
CUBLAS_WORKSPACE = ":4096:8"


def apply_reproducibility(cfg) -> None:
    """Set torch's algorithm flags from the config. Both keys False leaves torch's defaults (and is what a process
    starts with), so a run in the same interpreter after a deterministic one does not inherit its flags."""
    deterministic = bool(cfg.DETERMINISTIC)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK) and not deterministic
