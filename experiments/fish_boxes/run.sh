#!/usr/bin/env bash
# Boxing fish on the shared frames (VoTT CNTK boxes), CPU. Run from the repository root:
#   bash experiments/fish_boxes/run.sh   (outputs under outputs/fish_boxes/)
set -euo pipefail
ROOT=${FISH_ROOT:-../shared/data/fish/video1_output}
COMMON="data=fish_boxes data.root=$ROOT trainer.max_epochs=12 trainer.lr=1e-3 trainer.lr_div=10 logger=tensorboard"
# 1. Faster R-CNN + FPN on MobileNetV2 with ImageNet weights (the weights that are here offline), fine_tune
python -m fishbear.train $COMMON model=fasterrcnn_small model.backbone=mobilenet_v2 model.pretrained=true \
  model.weights=IMAGENET1K_V1 hydra.run.dir=outputs/fish_boxes/mobilenet_v2_imagenet
# 2. the same detector on fishbear's small convnet, from scratch
python -m fishbear.train $COMMON model=fasterrcnn_small model.backbone=convnet hydra.run.dir=outputs/fish_boxes/convnet_scratch
