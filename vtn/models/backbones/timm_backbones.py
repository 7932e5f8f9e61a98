"""The six backbones of the paper (sec. 4, Table 1), each pinned to the pretrained weights the paper names.

| registered name                  | timm weights                               | ImageNet top-1 in Table 1 |
|----------------------------------|--------------------------------------------|---------------------------|
| vit_base_patch16_224             | vit_base_patch16_224.orig_in21k_ft_in1k    | ImageNet-21K (84.0)       |
| deit_base_patch16_224            | deit_base_patch16_224.fb_in1k              | 81.8                      |
| deit_base_distilled_patch16_224  | deit_base_distilled_patch16_224.fb_in1k    | 83.4                      |
| deit_tiny_patch16_224            | deit_tiny_patch16_224.fb_in1k              | (DeiT-Ti, Table 3)        |
| resnet50                         | resnet50.tv_in1k (torchvision)             | 76.2                      |
| resnet101                        | resnet101.tv_in1k (torchvision)            | 77.4                      |

Features per frame: ViT/DeiT give the final-norm class token (768 or 192); DeiT-B-distilled gives the mean
of its class and distillation tokens, as DeiT averages its two heads at inference (timm's pre-logits);
ResNets give the 2048-d global average pool.

ViT-B: Table 1's "ImageNet-21K (84.0)" is an ImageNet-1K top-1, i.e. a model pretrained on ImageNet-21K and
fine-tuned on ImageNet-1K; the authors' release used exactly that file (jx_vit_base_p16_224, timm's
`orig_in21k_ft_in1k`). The 21K-only weights are one override away: `VTN.BACKBONE vit_base_patch16_224.orig_in21k`.
"""

from vtn.models.backbones.registry import BACKBONE_REGISTRY, create_timm_backbone

PAPER_BACKBONES = {
    "vit_base_patch16_224": "vit_base_patch16_224.orig_in21k_ft_in1k",
    "deit_base_patch16_224": "deit_base_patch16_224.fb_in1k",
    "deit_base_distilled_patch16_224": "deit_base_distilled_patch16_224.fb_in1k",
    "deit_tiny_patch16_224": "deit_tiny_patch16_224.fb_in1k",
    "resnet50": "resnet50.tv_in1k",
    "resnet101": "resnet101.tv_in1k",
}


def _register(name: str, timm_name: str) -> None:
    def build(cfg):
        return create_timm_backbone(cfg, timm_name)

    build.__doc__ = f"{name}: timm {timm_name} without its classifier."
    build.timm_name = timm_name  # the weights it loads (see registry.backbone_weights)
    BACKBONE_REGISTRY.register_as(name)(build)


for _name, _timm_name in PAPER_BACKBONES.items():
    _register(_name, _timm_name)
