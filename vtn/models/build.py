"""The model registry and `build_model`."""

import torch

from vtn.config import register_choices
from vtn.utils.registry import Registry

MODEL_REGISTRY = Registry("model")
MODEL_REGISTRY.__doc__ = "Whole video models, built from a config: `cls(cfg) -> nn.Module`."
register_choices("MODEL.MODEL_NAME", MODEL_REGISTRY.names)


def build_model(cfg, gpu_id=None) -> torch.nn.Module:
    """The model named by MODEL.MODEL_NAME, on the current CUDA device when NUM_GPUS > 0, else on the CPU.

    Distributed wrapping (DDP) is the engine's job, not the builder's. The models register themselves when the
    package is imported (vtn/models/__init__.py imports vtn.models.vtn).
    """
    model = MODEL_REGISTRY.get(cfg.MODEL.MODEL_NAME)(cfg)
    if cfg.NUM_GPUS > 0:
        if not torch.cuda.is_available():
            raise RuntimeError(f"NUM_GPUS = {cfg.NUM_GPUS} but CUDA is not available; set NUM_GPUS 0 to run on CPU.")
        device = torch.device("cuda", torch.cuda.current_device() if gpu_id is None else gpu_id)
        model = model.to(device)
    return model
