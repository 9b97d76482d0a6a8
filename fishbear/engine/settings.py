"""The ``trainer:`` config group read once, into one typed object.

Users keep typing ``trainer.lr=1e-3`` and sweeping ``-m trainer.lr=...``: the optimiser and
schedule keys live beside Lightning's Trainer arguments in ``conf/trainer/*.yaml``. They are split
here, once, into :class:`TrainerSettings`, which every command and benchmark takes: the Trainer's
own arguments, the optimiser's (``fishbear.training.optim.OptimSettings``), the memory format and
compilation. Nothing else reads those keys from the config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fishbear.training.optim import OptimSettings

log = logging.getLogger(__name__)

FISHBEAR_KEYS = (*OptimSettings.keys(), "channels_last", "compile", "fine_tune")


@dataclass(frozen=True)
class TrainerSettings:
    """``lightning``: Lightning's Trainer arguments (a config node with its ``_target_``);
    ``optim``: the optimiser and schedule; ``channels_last``: NHWC weights and batches;
    ``compile``: ``torch.compile`` the network in place."""

    lightning: DictConfig
    optim: OptimSettings
    channels_last: bool = False
    compile: bool = False

    @classmethod
    def from_config(cls, trainer_cfg: DictConfig) -> TrainerSettings:
        from fishbear.engine.config import instantiate

        lightning = OmegaConf.create({k: v for k, v in trainer_cfg.items() if k not in FISHBEAR_KEYS})
        if lightning.get("sync_batchnorm") and lightning.get("accelerator") == "cpu":
            # torch's SyncBatchNorm runs on GPUs only; on CPU processes each normalise their own batch
            log.info("trainer.sync_batchnorm is off on CPU (torch's SyncBatchNorm needs GPUs)")
            lightning.sync_batchnorm = False
        if trainer_cfg.get("compile", False) and "inference_mode" not in lightning:
            # a compiled network's graph for evaluation is made under no_grad in validation; testing
            # under inference_mode would compile it once more (inference tensors are another kind)
            lightning.inference_mode = False
        optim_node = OmegaConf.create({"_target_": "fishbear.training.optim.OptimSettings",
                                       **{k: trainer_cfg[k] for k in OptimSettings.keys() if k in trainer_cfg}})
        return cls(lightning=lightning, optim=instantiate(optim_node, "trainer"),
                   channels_last=bool(trainer_cfg.get("channels_last", False)),
                   compile=bool(trainer_cfg.get("compile", False)))

    def task_args(self) -> dict[str, Any]:
        """What a task is built with from these settings."""
        return {"optim": self.optim, "channels_last": self.channels_last, "compile_network": self.compile}

    def summary(self) -> dict[str, Any]:
        """The report's config section's share (what a reader compares runs by)."""
        return {"lr": self.optim.lr, "lr_div": self.optim.lr_div, "optimizer": self.optim.optimizer,
                "schedule": self.optim.schedule, "channels_last": self.channels_last}
