"""The Python API, a facade over vtn/inference/: load a trained VTN and classify or embed whole videos.

    import vtn
    model = vtn.load("configs/Kinetics/VIT_B_VTN.yaml", checkpoint="model.pyth", opts=["MODEL.NUM_CLASSES", "400"])
    model.predict("video.mp4", topk=5)   # [{"label": "abseiling", "score": 0.91}, ...]
    model.embed("video.mp4")             # VideoEmbedding(frame_idx (T,), frame_embeddings (T, D), cls_feature (D,))
    model.timeline("long.mp4", seconds=10)

Nothing inside vtn imports this module: the code lives in vtn/inference/model.py (VideoModel, load) and the
modules it uses (streaming, timeline).
"""

from vtn.inference.model import (  # noqa: F401  (the API's names)
    VideoEmbedding,
    VideoModel,
    check_video,
    checkpoint_opts,
    from_config,
    load,
    resolve_device,
)
from vtn.inference.streaming import VideoPrediction  # noqa: F401

__all__ = ["VideoEmbedding", "VideoModel", "VideoPrediction", "from_config", "load"]
