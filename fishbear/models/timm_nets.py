"""timm's architectures in fishbear: ``model=timm model.name=convnext_tiny`` (any of ``timm.list_models()``).

A classifier is timm's network without its classifier (its own pooling and pre-logits, so every
pretrained layer is used) followed by a fishbear head sized for the data. Its layer groups are
timm's own (``group_matcher(coarse=True)``: the stem, one group per stage or block, the final
norm), so freezing and discriminative rates work as for a torchvision backbone.

The model's ``pretrained_cfg`` is the one source of truth for its input: its mean and std feed the
data's normalisation, the checkpoint, the export's metadata and the standalone predictor; its input
size, interpolation and crop are recorded beside them.

Weights come from timm's own loading (the Hugging Face hub, ``HF_ENDPOINT`` and its cache), or from
``model.weights=FILE`` (safetensors or a state dict) on machines without internet.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fishbear.core.errors import ConfigError, FishbearError
from fishbear.models.base import Network, PretrainedCfg
from fishbear.models.heads import classifier_head
from fishbear.models.torchvision_bodies import WeightsUnavailableError

PREFIX = "timm/"  # a body named timm/<architecture> (the U-Net's encoder, a detector's backbone)


def _timm() -> Any:
    import timm  # imported on use: a second to import, and only timm models need it

    return timm


def _check_name(name: str) -> None:
    timm = _timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"timm has no architecture {name!r}.{hint} `python -c \"import timm; "
                          f"print(timm.list_models('convnext*'))\"` lists them; https://huggingface.co/timm has the weights.")


def _weights_file(name: str, pretrained: bool, weights: str | None) -> Path | None:
    """``weights`` names a file (not timm's default, ``DEFAULT`` or empty): it must exist, and it
    is read only for a pretrained model."""
    if weights in (None, "", "DEFAULT"):
        return None
    path = Path(str(weights)).expanduser()
    if not pretrained:
        raise ConfigError(f"model.weights={weights} is read only with model.pretrained=true: add it "
                          f"(or drop model.weights to train {name} from scratch).")
    if not path.is_file():
        raise ConfigError(f"model.weights={weights}: no such file. Give the path of {name}'s weights "
                          f"(model.safetensors or a state dict saved with torch.save).")
    return path.resolve()


def _where_weights_live(name: str) -> str:
    """Where timm would fetch ``name``'s weights from, and where they would be cached."""
    cfg = _timm().models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        from huggingface_hub import constants, hf_hub_url

        return (f"{hf_hub_url(hub_id, 'model.safetensors')} (cached under {constants.HF_HUB_CACHE}; "
                f"`hf download {hub_id} model.safetensors` fills it)")
    url = getattr(cfg, "url", None) if cfg is not None else None
    return f"{url} (cached under {Path(torch.hub.get_dir()) / 'checkpoints'})" if url else "timm's hub"


def _reach_the_hub(name: str, timeout: float = 10.0) -> None:
    """One request to the hub before timm's loading, which retries a refused connection for about
    45 s per file before failing: offline, the user gets the error at once. Skipped when the file is
    cached or the hub is switched off (``HF_HUB_OFFLINE``: timm then reads the cache alone)."""
    cfg = _timm().models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return
    from huggingface_hub import constants, hf_hub_url, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or any(isinstance(try_to_load_from_cache(hub_id, f), str)
                                       for f in ("model.safetensors", "pytorch_model.bin")):
        return
    import requests

    try:
        requests.head(hf_hub_url(hub_id, "model.safetensors"), timeout=timeout, allow_redirects=False)
    except requests.RequestException as err:
        raise WeightsUnavailableError(
            f"Could not reach the hub for the pretrained weights of timm's {name}: {_where_weights_live(name)}: "
            f"{type(err).__name__}. On a machine with internet, download that file, then run again with "
            f"model.weights=/path/to/model.safetensors; or set model.pretrained=false.") from None


def create_timm(name: str, pretrained: bool = False, weights: str | None = None,
                **kwargs: Any) -> tuple[nn.Module, PretrainedCfg]:
    """``timm.create_model`` with fishbear's errors: an unknown name with the closest ones, a
    missing weights file by name, an offline download with the file to fetch, where to put it and
    the override that reads it."""
    _check_name(name)
    timm = _timm()
    path = _weights_file(name, pretrained, weights)
    overlay = {"file": str(path)} if path else None
    if pretrained and not path:
        _reach_the_hub(name)
    try:
        model = timm.create_model(name, pretrained=pretrained, pretrained_cfg_overlay=overlay, **kwargs)
    except Exception as err:  # hub, HTTP, hash and unpickling errors all mean the same to the user
        if not pretrained:
            raise
        source = str(path) if path else _where_weights_live(name)
        raise WeightsUnavailableError(
            f"Could not load the pretrained weights of timm's {name} from {source}: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}. On a machine with internet, download that file, "
            f"then run again with model.weights=/path/to/model.safetensors; or set model.pretrained=false."
        ) from None
    data = model.pretrained_cfg
    cfg = PretrainedCfg(arch=f"{PREFIX}{name}", weights=(str(path) if path else data.get("hf_hub_id") or data.get("url"))
                        if pretrained else None,
                        mean=tuple(data.get("mean", PretrainedCfg.mean)), std=tuple(data.get("std", PretrainedCfg.std)),
                        extra={key: data.get(key) for key in ("input_size", "interpolation", "crop_pct", "crop_mode")})
    return model, cfg


def timm_groups(model: nn.Module) -> OrderedDict[str, list[str]]:
    """timm's coarse layer groups as parameter names, named ``stem``, ``stage1`` ... (input side
    first); a model without a group matcher is one group, ``body``."""
    from timm.models import group_parameters

    try:
        grouped = group_parameters(model, model.group_matcher(coarse=True))
    except (AttributeError, NotImplementedError):
        return OrderedDict(body=[name for name, _ in model.named_parameters()])
    names = ["stem"] + [f"stage{i}" for i in range(1, len(grouped))]
    return OrderedDict((label, list(grouped[key])) for label, key in zip(names, sorted(grouped)))


class TimmClassifier(Network):
    """timm's network up to its pre-logits (``trunk``) and a fishbear head (``classifier``).
    Layer groups: timm's groups of the trunk, then ``classifier``."""

    def __init__(self, trunk: nn.Module, classifier: nn.Module, cfg: PretrainedCfg) -> None:
        super().__init__()
        self.trunk = trunk
        self.classifier = classifier
        self.pretrained_cfg = cfg
        self._groups = timm_groups(trunk)

    def group_parameters(self) -> OrderedDict[str, list[tuple[nn.Module, nn.Parameter]]]:
        owners = dict(self.trunk.named_modules())
        groups = OrderedDict((label, [(owners[name.rpartition(".")[0]], self.trunk.get_parameter(name)) for name in names])
                             for label, names in self._groups.items())
        groups["classifier"] = [(m, p) for m in self.classifier.modules() for p in m.parameters(recurse=False)]
        return groups

    def layer_groups(self) -> OrderedDict[str, nn.Module]:
        """Each trunk group as the modules that own its parameters (they are not run in this
        order: :meth:`forward` is timm's), then the head; :meth:`group_parameters` is exact."""
        groups: OrderedDict[str, nn.Module] = OrderedDict()
        for label, members in self.group_parameters().items():
            if label == "classifier":
                groups[label] = self.classifier
            else:
                groups[label] = nn.ModuleList(list({id(m): m for m, _ in members}.values()))
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk.forward_head(self.trunk.forward_features(x), pre_logits=True))


def _probe_width(trunk: nn.Module, input_size: tuple[int, int, int] | None) -> int:
    """The pre-logits width, by passing one image of the model's own size through (timm's
    ``num_features`` is not always it: MobileNetV3's head convolution widens it)."""
    _, height, width = input_size or (3, 224, 224)
    was_training = trunk.training
    trunk.eval()
    with torch.no_grad():
        out = trunk.forward_head(trunk.forward_features(torch.zeros(1, 3, height, width)), pre_logits=True)
    trunk.train(was_training)
    return int(out.shape[-1])


def timm_classifier(num_classes: int, name: str = "resnet18", pretrained: bool = False, weights: str | None = None,
                    head: str = "fastai", dropout: float = 0.5, y_range: tuple[float, float] | None = None,
                    drop_path_rate: float = 0.0) -> TimmClassifier:
    """Any timm architecture with a head for the data (``y_range``: fastai's, for regression).
    ``drop_path_rate``: timm's stochastic depth, for the architectures that have it."""
    extra = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
    trunk, cfg = create_timm(name, pretrained, weights, num_classes=0, **extra)
    width = _probe_width(trunk, cfg.extra.get("input_size"))
    return TimmClassifier(trunk, classifier_head(width, num_classes, head, dropout, y_range, pooled=True), cfg)


def timm_body(arch: str, pretrained: bool = False,
              weights: str = "DEFAULT") -> tuple[OrderedDict[str, nn.Module], int, PretrainedCfg]:
    """``timm/<name>`` as a body of stages run one after another (the U-Net's encoder, a
    detector's backbone): timm's ``features_only`` network cut at each feature it returns."""
    name = arch[len(PREFIX):]
    model, cfg = create_timm(name, pretrained, weights, features_only=True)
    from timm.models import FeatureListNet

    if not isinstance(model, FeatureListNet):
        raise FishbearError(f"timm's {name} gives its feature maps its own way ({type(model).__name__}), not as stages "
                            f"run one after another; as an encoder or a detector's backbone use a network timm builds "
                            f"in stages (resnet*, convnext*, regnet*, resnext*, ...), or model=timm for a classifier.")
    groups: OrderedDict[str, nn.Module] = OrderedDict()
    current: list[tuple[str, nn.Module]] = []
    for module_name, module in model.items():
        current.append((module_name, module))
        if module_name in model.return_layers:
            groups["stem" if not groups else f"stage{len(groups)}"] = nn.Sequential(OrderedDict(current))
            current = []
    return groups, model.feature_info.channels()[-1], cfg
