"""Faster R-CNN as a fishbear network: torchvision's detector with named layer groups.

Two ways in, one :class:`Detector` out:

* :func:`faster_rcnn`: torchvision's own models (``fasterrcnn_resnet50_fpn_v2``,
  ``fasterrcnn_mobilenet_v3_large_fpn``, ...), COCO weights through torchvision's weights API and
  cache, with a new box predictor sized for the dataset's classes.
* :func:`faster_rcnn_on`: an FPN and Faster R-CNN heads on any fishbear backbone (``convnet`` from
  scratch for CPU runs and tests; ``mobilenet_v2`` or ``resnet*`` with ImageNet weights).

Layer groups are the backbone's stages (``stem``, ``stage1`` ...), then ``fpn``, ``rpn`` and
``roi_heads`` (the head), found by module name, so freezing, fine-tuning and discriminative
rates work as for every other network. Images arrive already resized and normalised by the data
pipeline (the same one every kind uses), so torchvision's own resize and normalisation are
switched off; class indices are fishbear's (0 = first class), torchvision's background slot is
hidden inside.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from fishbear.core.errors import FishbearError
from fishbear.core.tensors import IMAGENET_MEAN, IMAGENET_STD
from fishbear.models.backbones import body
from fishbear.models.base import Network, PretrainedCfg
from fishbear.models.torchvision_bodies import build_torchvision, split_at_strides

STAGE_NAMES = ["stem", "stage1", "stage2", "stage3", "stage4", "stage5"]


class PreparedImages(GeneralizedRCNNTransform):
    """torchvision's detector transform minus resize and normalisation, which fishbear's data
    pipeline has done (albumentations moves the boxes with the image); it still batches images
    into one padded tensor."""

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def resize(self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None) -> tuple[Any, Any]:
        return image, target


class Detector(Network):
    """A torchvision Faster R-CNN (``self.model``) seen through named layer groups.

    In training mode ``forward(images, targets)`` returns the model's losses; in eval mode,
    ``forward(images)`` returns one dict per image: ``boxes`` (pixels of the input tensor),
    ``scores`` and ``labels`` (fishbear class indices).
    """

    output = "boxes"

    def __init__(self, model: FasterRCNN, stages: OrderedDict[str, nn.Module], cfg: PretrainedCfg) -> None:
        super().__init__()
        self.model = model
        self.pretrained_cfg = cfg
        model.transform = PreparedImages(1, 1, list(IMAGENET_MEAN), list(IMAGENET_STD))
        groups = OrderedDict(stages)
        groups.update(fpn=model.backbone.fpn, rpn=model.rpn, roi_heads=model.roi_heads)
        self._groups = groups  # a plain dict: views of self.model's modules, not registered twice
        self._stage_names = list(stages)

    def layer_groups(self) -> OrderedDict[str, nn.Module]:
        return OrderedDict(self._groups)

    def body_groups(self) -> list[str]:
        """The backbone's stages: what ImageNet or COCO trained as a feature extractor. The FPN,
        RPN and ROI heads are tuned to the new objects from the start."""
        return list(self._stage_names)

    def forward(self, images: torch.Tensor | list[torch.Tensor],
                targets: list[dict[str, torch.Tensor]] | None = None) -> Any:
        if targets is not None:
            targets = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]
        if self.model.training and targets is None:
            raise ValueError("a Detector in training mode needs targets; call .eval() to predict")
        out = self.model(list(images), targets)
        if self.model.training:
            return out
        return [{"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"] - 1} for o in out]


def _stages_of(backbone_body: nn.Module) -> OrderedDict[str, nn.Module]:
    """Stage groups of a torchvision detector's backbone body: a ResNet's ``layer1..4`` (its
    ``conv1, bn1, relu, maxpool`` are the stem), or a MobileNet's blocks cut where they halve the
    resolution."""
    children = list(backbone_body.named_children())
    names = [name for name, _ in children]
    if "layer1" in names:
        groups = OrderedDict(stem=nn.Sequential(*[m for n, m in children if not n.startswith("layer")]))
        groups.update((f"stage{n.removeprefix('layer')}", m) for n, m in children if n.startswith("layer"))
        return groups
    return split_at_strides(nn.Sequential(*[m for _, m in children]), STAGE_NAMES)


def _configure_heads(model: FasterRCNN, num_classes: int, min_score: float, max_detections: int,
                     rois_per_image: int, proposals: int) -> None:
    # the box head's last linear layer feeds the predictor (TwoMLPHead, v2's conv head alike)
    in_features = [m for m in model.roi_heads.box_head.modules() if isinstance(m, nn.Linear)][-1].out_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes + 1)
    model.roi_heads.score_thresh = float(min_score)
    model.roi_heads.detections_per_img = int(max_detections)
    model.roi_heads.fg_bg_sampler.batch_size_per_image = int(rois_per_image)
    # torchvision keeps 2000 proposals per image in training and 1000 in evaluation
    model.rpn._pre_nms_top_n = {"training": int(proposals), "testing": max(1, int(proposals) // 2)}
    model.rpn._post_nms_top_n = {"training": int(proposals), "testing": max(1, int(proposals) // 2)}


def faster_rcnn(num_classes: int, arch: str = "fasterrcnn_resnet50_fpn_v2", pretrained: bool = False,
                weights: str = "DEFAULT", min_score: float = 0.05, max_detections: int = 100,
                rois_per_image: int = 512, proposals: int = 2000) -> Detector:
    """torchvision's Faster R-CNN ``arch`` with COCO weights when ``pretrained``, and a new box
    predictor for ``num_classes``. ``min_score``: boxes scored lower are not returned (low, so
    mAP sees the whole precision-recall curve); ``rois_per_image``: proposals sampled per image
    for the box head's loss and ``proposals``: region proposals kept per image in training (half
    that in evaluation); fewer of both is much faster on a CPU, whose ROI-align backward pass
    dominates a step."""
    if not arch.startswith("fasterrcnn_"):
        raise FishbearError(f"model.arch={arch!r} is not a torchvision Faster R-CNN; use e.g. "
                            "fasterrcnn_resnet50_fpn_v2 or fasterrcnn_mobilenet_v3_large_fpn")
    # everything trainable: fishbear's fine-tuning decides what is frozen, not the builder
    kwargs: dict[str, Any] = {"weights_backbone": None}
    if pretrained:
        kwargs["trainable_backbone_layers"] = 6 if "mobilenet" in arch else 5
    model, cfg = build_torchvision(arch, pretrained, weights, **kwargs)
    _configure_heads(model, num_classes, min_score, max_detections, rois_per_image, proposals)
    return Detector(model, _stages_of(model.backbone.body), cfg)


def _probe(stages: nn.Sequential, side: int = 128) -> tuple[list[int], list[int]]:
    """Each stage's stride and output channels, found by passing one small image through."""
    strides, channels, x = [], [], torch.zeros(1, 3, side, side)
    was_training = stages.training
    stages.eval()
    with torch.no_grad():
        for stage in stages:
            x = stage(x)
            strides.append(side // x.shape[-1])
            channels.append(x.shape[1])
    stages.train(was_training)
    return strides, channels


def faster_rcnn_on(num_classes: int, backbone: str = "convnet", pretrained: bool = False, weights: str = "DEFAULT",
                   levels: int = 4, fpn_channels: int = 256, anchor_scale: float = 8.0, head_width: int = 1024,
                   min_score: float = 0.05, max_detections: int = 100, rois_per_image: int = 512,
                   proposals: int = 2000) -> Detector:
    """Faster R-CNN with an FPN over the last ``levels`` stages of a fishbear backbone (ImageNet
    weights when ``pretrained``). Each pyramid level gets square-ish anchors of ``anchor_scale``
    times its stride (torchvision's 32 px at stride 4 is a scale of 8; objects a few pixels across
    in small images want less), at aspect ratios 1:2, 1:1 and 2:1."""
    groups, _, cfg = body(backbone, pretrained, weights)
    stages = nn.Sequential(groups)
    names = list(groups)
    if not 1 <= levels <= len(names) - 1:
        raise FishbearError(f"model.levels={levels}: {backbone} has {len(names)} stages; use 1 to {len(names) - 1}")
    strides, channels = _probe(stages)
    used = names[-levels:]
    extractor = BackboneWithFPN(stages, {name: str(i) for i, name in enumerate(used)},
                                [channels[names.index(n)] for n in used], int(fpn_channels))
    level_strides = [strides[names.index(n)] for n in used] + [2 * strides[-1]]  # + the max-pooled level
    anchors = AnchorGenerator(tuple((float(anchor_scale * s),) for s in level_strides),
                              ((0.5, 1.0, 2.0),) * len(level_strides))
    roi_pool = MultiScaleRoIAlign([str(i) for i in range(len(used))], output_size=7, sampling_ratio=2)
    model = FasterRCNN(extractor, num_classes=num_classes + 1, rpn_anchor_generator=anchors, box_roi_pool=roi_pool,
                       box_head=TwoMLPHead(int(fpn_channels) * 7 * 7, int(head_width)))
    _configure_heads(model, num_classes, min_score, max_detections, rois_per_image, proposals)
    stages_of_body = OrderedDict(model.backbone.body.named_children())
    return Detector(model, stages_of_body, replace(cfg, arch=f"fasterrcnn_fpn_{backbone}"))
