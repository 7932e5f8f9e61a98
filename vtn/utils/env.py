"""A description of the software and hardware a run used, for the log."""

import importlib
import platform

import torch


def collect_env_info() -> str:
    lines = [f"python {platform.python_version()} on {platform.platform()}"]
    for name in ("torch", "torchvision", "timm", "transformers", "fvcore", "av", "numpy"):
        try:
            lines.append(f"{name} {importlib.import_module(name).__version__}")
        except Exception as e:  # a missing optional package is worth a line, not a crash
            lines.append(f"{name}: not available ({e.__class__.__name__})")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            lines.append(f"cuda:{i} {torch.cuda.get_device_name(i)} (CUDA {torch.version.cuda})")
    else:
        lines.append(f"no CUDA device; {torch.get_num_threads()} CPU threads")
    return "\n".join(lines)
