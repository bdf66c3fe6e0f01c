"""The connector registry: built-ins found by scanning this package, outside ones by entry point.

Adding a connector edits no list: drop `connectors/<kind>.py` with a `Connector` subclass whose
`kind` equals the module name, or ship a package that declares it under the
`mainland.connectors` entry-point group. An application embedding Mainland may also pass classes
itself (`create_app(config, connectors=[...])`). Two connectors claiming one kind is an error at start-up.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterable
from importlib.metadata import entry_points

from connectors.base import Connector

ENTRY_POINT_GROUP = "mainland.connectors"


class RegistryError(Exception):
    """The set of installed connectors is inconsistent (for example, a kind claimed twice)."""


def builtin_modules() -> list[str]:
    """The modules of this package the scan imports: all but the private ones, the contract and the kit."""
    return [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)
            if not m.name.startswith("_") and m.name not in {"base", "testing"}]


def _builtin_classes() -> list[type[Connector]]:
    found = []
    for name in builtin_modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Connector) and obj is not Connector and obj.__module__ == module.__name__ \
                    and not inspect.isabstract(obj):
                found.append(obj)
    return found


def _entry_point_classes() -> list[type[Connector]]:
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if not (inspect.isclass(obj) and issubclass(obj, Connector)):
            raise RegistryError(f"entry point {ep.name} = {ep.value} is not a Connector subclass")
        found.append(obj)
    return found


def _given_classes(given: Iterable[type[Connector]]) -> list[type[Connector]]:
    found = []
    for obj in given:
        if not (inspect.isclass(obj) and issubclass(obj, Connector)):
            raise RegistryError(f"{obj!r} was passed as a connector but is not a Connector subclass")
        found.append(obj)
    return found


def discover(*, include_entry_points: bool = True,
             extra: Iterable[type[Connector]] = ()) -> dict[str, type[Connector]]:
    """Every available connector class by kind: the built-ins, the entry points' and the `extra` classes
    passed in (`create_app(connectors=...)`, `Mainland(extra_connectors=...)`), all under the same rules."""
    registry: dict[str, type[Connector]] = {}
    classes = _builtin_classes() + (_entry_point_classes() if include_entry_points else []) + _given_classes(extra)
    for cls in classes:
        kind = getattr(cls, "kind", None)
        if not kind:
            raise RegistryError(f"{cls.__module__}.{cls.__name__} has no `kind`")
        if kind in registry and registry[kind] is not cls:
            other = registry[kind]
            raise RegistryError(
                f"connector kind {kind!r} is claimed by both {other.__module__}.{other.__name__} "
                f"and {cls.__module__}.{cls.__name__}; uninstall one of them"
            )
        registry[kind] = cls
    return registry
