"""What every entry point shares: user errors become one message and exit code 2, no traceback."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from fishbear.core.errors import FishbearError

F = TypeVar("F", bound=Callable[..., Any])


def route_library_logs_to_root() -> None:
    """Lightning and torchmetrics add a stderr handler of their own and also pass messages on to
    the root logger that Hydra set up (console and train.log): each message printed twice. Leave
    them to the root logger when it has handlers."""
    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics"):
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            if type(handler) is logging.StreamHandler:
                library.removeHandler(handler)
        library.propagate = True


def _without_worker_traceback(message: str) -> str:
    """A DataLoader worker re-raises our error with its traceback folded into the message;
    keep the message itself (the last line, after ``module.Class: ``)."""
    if "Original Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    return last.split(": ", 1)[1] if ": " in last else last


_JOB_STARTED = False  # set when Hydra has composed the config and handed it to the job


def user_errors_exit(fn: F) -> F:
    """Print :class:`FishbearError` and config errors as ``error: ...`` and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _JOB_STARTED
        _JOB_STARTED = True
        try:
            return fn(*args, **kwargs)
        except FishbearError as err:
            message = _without_worker_traceback(str(err))
        except MissingMandatoryValue as err:
            key = getattr(err, "full_key", None) or "?"
            message = f"{key} must be set: add {key}=... to the command line ({str(err).splitlines()[0]})"
        except OmegaConfBaseException as err:
            message = f"configuration problem: {err}"
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2)

    return wrapper  # type: ignore[return-value]


def check_ranges(cfg: Any, counts: tuple[str, ...] = (), fractions: tuple[str, ...] = (),
                 seconds: tuple[str, ...] = (), ports: tuple[str, ...] = ()) -> Any:
    """``counts`` must be whole numbers of 1 or more, ``fractions`` numbers in [0, 1] (or unset),
    ``seconds`` numbers of 0 or more, ``ports`` whole numbers from 0 (any free port) to 65535:
    one named error each, before any work."""
    from omegaconf import OmegaConf

    from fishbear.core.errors import ConfigError

    for key in seconds:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{key}={value} must be a number of seconds, 0 or more")
    for key in ports:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise ConfigError(f"{key}={value} must be a port number from 0 to 65535")
    for key in counts:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{key}={value} must be a whole number of 1 or more")
    for key in fractions:
        value = OmegaConf.select(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise ConfigError(f"{key}={value} must be a number between 0 and 1")
    return cfg


def _valid_keys(config_name: str, parent: str) -> list[str]:
    """The keys of ``parent`` in ``config_name`` as composed without overrides (for suggestions)."""

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig, OmegaConf

    from fishbear.conf import CONF_DIR

    state = GlobalHydra.instance().is_initialized()
    if state:
        return []
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return [f"{parent}.{k}" if parent else str(k) for k in node] if isinstance(node, DictConfig) else []
    except Exception:
        return []
    finally:
        GlobalHydra.instance().clear()


def hydra_message(err: BaseException, config_name: str) -> str:
    """One line for Hydra's answer to a bad command line: an unknown key or choice gets the
    closest valid ones (``trainer.max_epoch`` -> ``did you mean trainer.max_epochs?``)."""
    import difflib

    from hydra.errors import MissingConfigException

    cause = err.__cause__
    key = getattr(cause, "full_key", None)
    text = str(cause or "")
    if key and ("not in struct" in text or "Could not override" in str(err)):
        parent = key.rpartition(".")[0]
        names = [k.rpartition(".")[2] for k in _valid_keys(config_name, parent) if not k.endswith("._target_")]
        close = difflib.get_close_matches(key.rpartition(".")[2], names, n=2, cutoff=0.7)
        hint = f"; did you mean {' or '.join(f'{parent}.{c}' if parent else c for c in close)}?" if close else ""
        listed = f"({parent or 'the config'} has: {', '.join(names[:40])})" if names else "(check the spelling)"
        import re

        given = re.search(r"Could not override '([^']+)'", str(err))
        return f"{given.group(1) if given else key} is not a setting of this command{hint} {listed}"
    if isinstance(err, MissingConfigException):
        lines = str(err).splitlines()
        first = lines[0].split(": ", 1)[-1] if lines else str(err)
        options = [o for o in (getattr(err, "options", None) or []) if o]
        missing = (getattr(err, "missing_cfg_file", "") or "").rpartition("/")
        group, wanted = missing[0], missing[2]
        close = difflib.get_close_matches(wanted, options, n=3, cutoff=0.6) if wanted else []
        hint = f"did you mean {' or '.join(f'{group}={c}' for c in close)}? " if close else ""
        return f"{first}; {hint}" + (f"the {group}= choices are: {', '.join(options)}" if options else "")
    parts = [str(err)] + ([text] if text else [])
    lines = [line.strip() for part in parts for line in part.splitlines()
             if line.strip() and not line.strip().startswith(("To append", "full_key", "object_type", "Config search",
                                                               "provider="))]
    return " ".join(lines)


def asks_for_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)


def command_help(module_name: str) -> str:
    """A command module's docstring and usage line: what ``fishbear <command> --help`` and
    ``python -m fishbear.<command> --help`` both print."""
    import importlib

    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    # under python -m the command is __main__: not imported (and run) a second time
    module = main_module if spec is not None and spec.name == module_name else importlib.import_module(module_name)
    text = (module.__doc__ or "").strip()
    usage_line = getattr(module, "USAGE", None)
    return f"{text}\n\nusage: {usage_line}" if usage_line else text


def compose_cli(config_name: str, overrides: list[str], usage: str) -> Any:
    """The config ``config_name`` with the command line's Hydra overrides (``key=value``), for the
    entry points that write no run folder (``predict``, ``frames``): the same override grammar as
    ``train``, without Hydra's run directory and logging. A malformed or unknown override is a
    :class:`ConfigError` that shows ``usage``."""

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from fishbear.conf import CONF_DIR
    from fishbear.core.errors import ConfigError

    if asks_for_help(list(overrides)):  # python -m fishbear.<command> --help, as fishbear <command> --help
        print(command_help(f"fishbear.{config_name}"))
        raise SystemExit(0)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides))
    except HydraException as err:
        GlobalHydra.instance().clear()
        # Hydra's "To append to your config use +key=..." does not apply: these configs are closed
        raise ConfigError(f"{hydra_message(err, config_name)}; usage: {usage}") from None
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.to_container(cfg, throw_on_missing=True)  # a missing required key is named before any work
    return cfg


def run_hydra_main(main: Callable[[], Any], argv: list[str], config_name: str,
                   precheck: Callable[[list[str]], None] | None = None) -> None:
    """Run a ``@hydra.main`` entry point so that every user error exits with status 2: Hydra
    answers an unknown key or choice with its message and status 1, the same status as a crash;
    a failure before the job started can only be the command line's. The run folder's parent is
    checked first, so an output path under a file is one line, not Hydra's traceback; then
    ``precheck`` (the run folder's own overrides, for ``train``), before Hydra writes anything."""

    problem = _output_problem(argv)
    if problem is None and precheck is not None:
        try:
            precheck(argv)
        except FishbearError as err:
            problem = str(err)
    if problem:
        print(f"error: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    import os

    from hydra.errors import HydraException

    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"  # the user asked for Hydra's tracebacks
    os.environ["HYDRA_FULL_ERROR"] = "1"  # so that Hydra's errors reach this function, to be said in one line
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        if full_error or _JOB_STARTED:
            raise
        print(f"error: {hydra_message(err, config_name)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except SystemExit as exit_:
        if exit_.code == 1 and not _JOB_STARTED:
            raise SystemExit(2) from None
        raise
    finally:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def _output_problem(argv: list[str]) -> str | None:
    """Why the run folder could not be created (a file where a folder must be, a folder without
    write permission), judged from ``hydra.run.dir=`` / ``hydra.sweep.dir=`` or
    ``$FISHBEAR_OUTPUTS`` (default ``outputs``); None when it can."""
    import os
    from pathlib import Path

    given = [a.split("=", 1)[1] for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    wanted = Path(given[0] if given else os.environ.get("FISHBEAR_OUTPUTS") or "outputs").expanduser().absolute()
    existing = wanted
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return (f"cannot create the run folder {wanted}: {existing} is a file, not a folder. Move it, or set "
                "FISHBEAR_OUTPUTS (or hydra.run.dir=) to a folder of yours.")
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"cannot create the run folder {wanted}: {existing} is not writable. Set FISHBEAR_OUTPUTS "
                "(or hydra.run.dir=) to a folder you can write to.")
    return None
