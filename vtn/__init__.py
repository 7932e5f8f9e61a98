"""vtn: Video Transformer Network (Neimark et al., 2021) as a PySlowFast-style research framework."""

__version__ = "0.1.0"

from vtn import compat as _compat  # noqa: E402

_compat.install()  # old module paths (vtn.engine.predict, ...) lead to their new places


def __getattr__(name):
    """`vtn.load` (and `vtn.VideoModel`) import torch and the model code only when first used."""
    if name in ("load", "VideoModel"):
        from vtn.inference import model

        return getattr(model, name)
    raise AttributeError(f"module 'vtn' has no attribute {name!r}")
