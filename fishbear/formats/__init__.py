"""The one registry of label formats: name -> :class:`~fishbear.formats.base.LabelFormat`.

Every module of this package that declares ``FORMAT`` (or ``FORMATS``, for one file format read
two ways) is a format; nothing else lists them. ``convert``, ``predict format=``, the
``conf/data/reader`` group and the docs' table are checked against this registry by the tests.
"""

from __future__ import annotations

import importlib
import pkgutil

from fishbear.core.errors import ConfigError
from fishbear.formats.base import BoxLabelWriter, LabelFormat


def _discover() -> dict[str, LabelFormat]:
    found: dict[str, LabelFormat] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        declared = list(getattr(module, "FORMATS", ())) + ([module.FORMAT] if hasattr(module, "FORMAT") else [])
        for fmt in declared:
            if fmt.name in found:
                raise RuntimeError(f"label format {fmt.name!r} is declared twice ({info.name})")
            found[fmt.name] = fmt
    return found


FORMATS: dict[str, LabelFormat] = _discover()


def writable() -> dict[str, LabelFormat]:
    """The formats fishbear writes (``convert dst_format=``, ``predict format=``): the box formats."""
    return {name: fmt for name, fmt in FORMATS.items() if fmt.writer is not None}


def readable_as(formats: dict[str, LabelFormat]) -> dict[str, LabelFormat]:
    """The formats holding labels of the kinds of ``formats`` (what ``convert`` reads from)."""
    kinds = {fmt.kind for fmt in formats.values()}
    return {name: fmt for name, fmt in FORMATS.items() if fmt.kind in kinds}


def writer_for(name: str, key: str = "format") -> type[BoxLabelWriter]:
    """The writer of format ``name``; ``key``: the setting that named it, for the error."""
    formats = writable()
    if name not in formats:
        raise ConfigError(f"{key}={name}: fishbear writes boxes as {', '.join(formats)}.")
    writer = formats[name].writer
    assert writer is not None
    return writer


def formats_table() -> str:
    """The docs' table of formats (``docs/datasets.md``), made from the registry (a test keeps the
    page and this equal)."""
    rows = ["| format (`data/reader=`) | kind | what | layout | fishbear writes it |", "|---|---|---|---|---|"]
    rows += [f"| `{name}` | {fmt.kind} | {fmt.summary} | `{fmt.layout}` | {'yes' if fmt.writer else ''} |"
             for name, fmt in FORMATS.items()]
    return "\n".join(rows) + "\n"


__all__ = ["FORMATS", "BoxLabelWriter", "LabelFormat", "readable_as", "formats_table", "writable", "writer_for"]
