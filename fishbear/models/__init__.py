"""fishbear's networks. ``NETWORK_BUILDERS`` lists every callable a model config (and so a
checkpoint's ``model_cfg``) may name as its ``_target_``: a checkpoint is rebuilt only from these,
never from whatever class path its file names."""

NETWORK_BUILDERS: frozenset[str] = frozenset({
    "fishbear.models.simple.ConvNet",
    "fishbear.models.simple.MLP",
    "fishbear.models.torchvision_nets.classifier",
    "fishbear.models.timm_nets.timm_classifier",
    "fishbear.models.unet.UNet",
    "fishbear.models.detection.faster_rcnn",
    "fishbear.models.detection.faster_rcnn_on",
    # the names model configs used before `classifier`: checkpoints written then still load
    "fishbear.models.torchvision_nets.resnet",
    "fishbear.models.torchvision_nets.vgg",
    "fishbear.models.torchvision_nets.mobilenet_v2",
})
