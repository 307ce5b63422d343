"""Named registries that third-party packages extend through entry points.

maskprep's variation points (dataset layouts, training targets, class-weight
schemes) are each a :class:`Registry`: built-in entries register themselves
when their module is imported, and other packages add theirs with an entry
point, as zarr codecs and xarray backends do::

    # pyproject.toml of a plugin package
    [project.entry-points."maskprep.layouts"]
    tiles = "my_plugin:TilesLayout"

    [project.entry-points."maskprep.targets"]
    skeleton = "my_plugin:SkeletonTarget"

An entry point names an object (a class is instantiated with no arguments);
its ``name`` attribute must equal the entry point's name. Entry points are
loaded lazily, the first time a registry is asked for its names or for a name
it does not know. See ``docs/plugins.md`` for a complete plugin.

This module imports nothing heavy and nothing else from maskprep but
:mod:`maskprep.errors`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from maskprep.errors import PluginError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry of one kind, filled by built-in modules and by entry points.

    Parameters
    ----------
    kind : str
        What the entries are, for messages (``"layout"``).
    group : str or None
        Entry-point group read for third-party entries (``"maskprep.layouts"``).
    builtins : tuple of str
        Modules that register the built-in entries when imported; imported on
        first use, so that importing the registry stays cheap.

    Examples
    --------
    >>> shapes = Registry("shape", group=None)
    >>> @shapes.register("square")
    ... def square(x):
    ...     return x * x
    >>> shapes.names(), shapes.get("square")(3)
    (('square',), 9)
    >>> shapes.get("circle")
    Traceback (most recent call last):
    ...
    KeyError: "unknown shape 'circle'; available: square"
    """

    def __init__(self, kind: str, group: str | None, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = group
        self._builtins = builtins
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T]:
        """Register ``entry`` under ``name`` (or use as a decorator).

        Registering a name twice is an error unless it is the same object.
        """

        def add(obj: T) -> T:
            with self._lock:
                old = self._entries.get(name)
                if old is not None and old is not obj:
                    raise PluginError(f"{self.kind} {name!r} is registered twice")
                self._entries[name] = obj
            return obj

        if entry is not None:
            add(entry)
        return add

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for module in self._builtins:
                importlib.import_module(module)
            if self.group is None:
                return
            for ep in entry_points(group=self.group):
                if ep.name in self._entries:
                    continue  # a built-in of that name wins; a plugin cannot replace it
                try:
                    obj = ep.load()
                except Exception as exc:  # a broken plugin must name itself
                    raise PluginError(
                        f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
                    ) from exc
                if isinstance(obj, type):
                    obj = obj()
                declared = getattr(obj, "name", ep.name)
                if declared != ep.name:
                    raise PluginError(
                        f"{self.kind} plugin {ep.value} is named {declared!r} but its entry "
                        f"point in {self.group!r} is {ep.name!r}"
                    )
                self._entries[ep.name] = obj

    def names(self) -> tuple[str, ...]:
        """Every registered name, sorted, entry points included."""
        self._load()
        return tuple(sorted(self._entries))

    def in_order(self) -> tuple[str, ...]:
        """Every registered name in registration order: built-ins first, then plugins."""
        self._load()
        return tuple(self._entries)

    def get(self, name: str) -> T:
        """The entry called ``name``; KeyError listing the known names if none."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
