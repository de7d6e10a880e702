"""Flags from the settings schemas (:mod:`gpucnn.config`), and the settings a command runs with.

In rising priority: the schema's defaults, the command's own (e.g. its output folder), a
``--config`` TOML file, then the flags given.  (The experiments add their protocol between the
command's defaults and the file: :func:`gpucnn.experiments.make_settings`.)
A bad value is reported under the spelling that gave it: the flag, or the file and key.
"""
from __future__ import annotations

from ..config import Schema


def add_settings(parser, schema: Schema, title: str, defaults: dict | None = None,
                 config: bool = True) -> None:
    """An argument group ``title`` with a flag per setting of ``schema`` (and ``--config``)."""
    group = parser.add_argument_group(title)
    if config:
        group.add_argument("--config", metavar="TOML",
                           help="settings file: top-level keys named like these flags, with _ "
                                "for - (e.g. batch_size = 50); flags override it")
    schema.add_flags(group, defaults)


def resolve(args, schema: Schema, defaults: dict | None = None) -> dict:
    """The checked settings of ``schema`` for this command line (see the module docstring)."""
    layers = [(defaults or {}, {})]
    path = getattr(args, "config", None)
    if path:
        layers.append(schema.read_toml(path))
    layers.append(schema.from_args(args))
    return schema.resolve(*layers)


def given_labels(args, schema: Schema) -> dict:
    """``{name: how the user wrote it}`` of the settings of ``schema`` given in the ``--config``
    file (``path: key``) or as flags (the flag, which wins)."""
    path = getattr(args, "config", None)
    labels = schema.read_toml(path)[1] if path else {}
    labels.update(schema.from_args(args)[1])
    return labels
