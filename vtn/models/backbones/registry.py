"""The backbone registry and the timm path that builds any timm model as a per-frame feature extractor."""

import functools
import logging
import os
import types

import torch.nn as nn

from vtn.config import register_check
from vtn.models.checkpointing import checkpointed, use_checkpointing
from vtn.utils.errors import ConfigError, UserError
from vtn.utils.registry import Registry, did_you_mean

logger = logging.getLogger(__name__)

BACKBONE_REGISTRY = Registry("backbone")
BACKBONE_REGISTRY.__doc__ = "Builders `f(cfg) -> nn.Module` of per-frame feature extractors."


@functools.lru_cache(maxsize=1)
def _timm_names() -> frozenset:
    import timm  # heavy (seconds): only when a name must be looked up

    return frozenset(timm.list_models())


def _timm_arch(name: str) -> str:
    """'vit_base_patch16_224.orig_in21k' -> 'vit_base_patch16_224'."""
    return name.split(".", 1)[0]


def backbone_exists(name: str) -> bool:
    return name in BACKBONE_REGISTRY or _timm_arch(name) in _timm_names()


@register_check
def check_backbone_name(cfg) -> None:
    """VTN.BACKBONE must be a registered backbone or a timm model name (checked when a config is loaded)."""
    name = cfg.VTN.BACKBONE
    if not backbone_exists(name):
        raise ConfigError(
            f"VTN.BACKBONE = {name!r} is neither a registered backbone nor a timm model name. Registered: "
            f"{', '.join(known_backbone_names(registered_only=True))}; any name of timm.list_models() also works."
            + did_you_mean(name, known_backbone_names())
        )


def known_backbone_names(registered_only: bool = False) -> list[str]:
    names = BACKBONE_REGISTRY.names()
    return names if registered_only else names + sorted(_timm_names())


def cnn_or_transformer(model: nn.Module) -> str:
    """'transformer' for attention-based timm models (they carry `blocks`), 'cnn' otherwise."""
    return "transformer" if hasattr(model, "blocks") or hasattr(model, "stages_transformer") else "cnn"


def backbone_weights(name: str) -> str:
    """The timm `architecture.tag` whose pretrained weights VTN.BACKBONE = `name` loads: a registered backbone's
    pinned weights, a tagged timm name as it is, an untagged one with timm's default tag."""
    if name in BACKBONE_REGISTRY:
        name = getattr(BACKBONE_REGISTRY.get(name), "timm_name", name)
    if "." in name:
        return name
    from timm.models import get_pretrained_cfg  # heavy: as above

    pretrained = get_pretrained_cfg(name)
    return f"{name}.{pretrained.tag}" if pretrained is not None and pretrained.tag else name


class BackboneError(UserError, ValueError):
    """A backbone that cannot be built as configured."""


class PretrainedWeightsError(UserError, RuntimeError):
    """Pretrained backbone weights that cannot be loaded (no network, a bad local file)."""


def create_timm_backbone(cfg, timm_name: str) -> nn.Module:
    """A timm model without its classifier (`num_classes=0`): its forward returns pooled features.

    Weights: `VTN.PRETRAINED_PATH` (a local file) when set, else timm's hub when `VTN.PRETRAINED`. Stochastic
    depth: `VTN.DROP_PATH_RATE` (active in train mode only).
    """
    import timm  # heavy: only when a backbone is built

    kwargs = dict(cfg.VTN.BACKBONE_KWARGS)
    if cfg.VTN.DROP_PATH_RATE > 0:
        kwargs.setdefault("drop_path_rate", cfg.VTN.DROP_PATH_RATE)
    local = cfg.VTN.PRETRAINED_PATH
    if local:
        if not os.path.isfile(local):
            raise PretrainedWeightsError(
                f"VTN.PRETRAINED_PATH = {local!r} does not exist; expected a timm state-dict file "
                "(.pth, .bin, .safetensors or .npz) for backbone " + repr(timm_name)
            )
        kwargs["pretrained_cfg_overlay"] = dict(file=os.path.abspath(local))
    pretrained = bool(cfg.VTN.PRETRAINED or local)
    try:
        model = timm.create_model(timm_name, pretrained=pretrained, num_classes=0, **kwargs)
    except TypeError as e:  # a keyword the model does not take
        raise BackboneError(
            f"VTN.BACKBONE_KWARGS = {dict(cfg.VTN.BACKBONE_KWARGS)} does not fit the timm model {timm_name!r}: {e}"
        ) from e
    except (OSError, RuntimeError, ValueError) as e:  # hub errors are OSErrors; a bad file raises the others
        if not pretrained:
            raise
        source = f"the file {local}" if local else "timm's hub (Hugging Face)"
        raise PretrainedWeightsError(
            f"cannot load the pretrained weights {backbone_weights(timm_name)!r} of VTN.BACKBONE from {source}: "
            f"{e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}. Without network, download the "
            "file elsewhere and set VTN.PRETRAINED_PATH to it (or VTN.PRETRAINED False for random weights)."
        ) from e
    if pretrained:
        logger.info(
            "Backbone %s: pretrained weights %s from %s", timm_name, backbone_weights(timm_name), local or "timm's hub"
        )
    model.family = cnn_or_transformer(model)
    return model


def feature_dim(model: nn.Module) -> int:
    """Width of the per-frame feature: timm's `head_hidden_size` when the model has a pre-logits head
    (e.g. MobileNetV3's 1024 after its 288-channel body), else `num_features`."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def build_backbone(cfg) -> nn.Module:
    """The backbone named by VTN.BACKBONE: a registered builder, else the timm model of that name.

    The module maps (N, C, H, W) frames to (N, feature_dim) and carries `feature_dim` and `family`."""
    name = cfg.VTN.BACKBONE
    if name in BACKBONE_REGISTRY:
        model = BACKBONE_REGISTRY.get(name)(cfg)
    elif backbone_exists(name):
        model = create_timm_backbone(cfg, name)
    else:
        BACKBONE_REGISTRY.get(name)  # raises with the registered names and close matches
    if not hasattr(model, "family"):
        model.family = cnn_or_transformer(model)
    if not hasattr(model, "feature_dim"):
        model.feature_dim = feature_dim(model)
    return model


def _checkpointed_forward(self, *args, **kwargs):
    """The class's forward, checkpointed as a whole in training (bound to a backbone by `_checkpoint_whole`)."""
    forward = type(self).forward
    if use_checkpointing(self):
        return checkpointed(forward, self, *args, **kwargs)
    return forward(self, *args, **kwargs)


def _checkpoint_whole(model: nn.Module, enable: bool) -> None:
    # A bound method on the instance: copy.deepcopy (the EMA model) rebinds it to the copy.
    model.__dict__.pop("forward", None)
    if enable:
        model.forward = types.MethodType(_checkpointed_forward, model)


def set_backbone_grad_checkpointing(model: nn.Module, enable: bool = True) -> str:
    """Activation checkpointing of a backbone (VTN.GRAD_CHECKPOINTING). Returns how: "blocks" or "whole".

    "blocks": the model's own `set_grad_checkpointing` (timm's: every ViT/DeiT block, every ResNet bottleneck;
    all six backbones of the paper have it), which keeps only the block inputs. "whole": a model without it (or
    a timm model that refuses it) has its whole forward checkpointed, which frees its activations only while the
    temporal encoder and the head run: the peak of its own backward stays (a warning says so).

    BatchNorm in training mode updates its running statistics again when a checkpointed block is recomputed;
    the gradients are unchanged."""
    setter = getattr(model, "set_grad_checkpointing", None)
    if setter is not None:
        try:
            setter(enable)
            return "blocks"
        except (AssertionError, NotImplementedError):  # timm: `assert not enable, "... not supported"`
            pass
    _checkpoint_whole(model, enable)
    if enable:
        logger.warning(
            "VTN.GRAD_CHECKPOINTING: backbone %s has no per-block checkpointing (set_grad_checkpointing); its "
            "whole forward is recomputed in the backward pass, which saves less memory",
            type(model).__name__,
        )
    return "whole"
