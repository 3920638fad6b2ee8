"""Rebuilding a launched pipeline with other settings (for relaunch sweeps).

ezmsg components run once, and a collection's ``configure()`` sets its units' settings
at launch. So the Lab keeps a pristine copy of what it launched (a :class:`Recipe`,
copied before ezmsg touches it) and, for each point of a relaunch sweep, copies it
again, applies the point's settings to the addressed component and launches that.
A unit whose settings its collection's ``configure()`` overwrites cannot be swept
that way: :func:`build` finds out on a trial copy and says which collection field to
sweep instead.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import LabError
from ..model.paths import get_path
from ..model.settings_changes import settings_equal
from ..model.settings_schema import spec_from_class
from ..model.settings_validate import build_update
from .pipeline import _normalise_components, _walk

logger = logging.getLogger(__name__)


@dataclass
class Recipe:
    """A pristine copy of a launch: components (by name), ezmsg's root name, connections,
    process components and the launch options."""

    components: dict[str, Any]
    root: str | None
    connections: list[Any] | None
    process_components: list[Any] | None
    options: dict[str, Any] = field(default_factory=dict)

    def addresses(self) -> dict[str, Any]:
        """Every component of the copy by address (units and collections)."""
        return dict(_walk(self.components, self.root))

    def copy(self) -> tuple[dict[str, Any], list[Any] | None, list[Any] | None]:
        # One deepcopy for all three: connections refer to the components' streams.
        parts = (self.components, self.connections, self.process_components)
        return copy.deepcopy(parts)


def make_recipe(
    components: Any,
    name: str | None,
    connections: Iterable[Any] | None,
    process_components: Iterable[Any] | None,
    **options: Any,
) -> Recipe | None:
    """Copy a launch before ezmsg configures it; None when it cannot be copied (a
    relaunch sweep then says so)."""
    try:
        _, root, comps = _normalise_components(components, name)
        parts = (
            comps,
            list(connections) if connections is not None else None,
            list(process_components) if process_components is not None else None,
        )
        comps, conns, procs = copy.deepcopy(parts)
    except Exception as exc:  # the launch itself reports bad components
        logger.debug("launch not copied for relaunching: %r", exc)
        return None
    return Recipe(comps, root, conns, procs, dict(options))


def build(
    recipe: Recipe, patches: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], list[Any] | None, list[Any] | None]:
    """A fresh copy of ``recipe`` with ``patches`` ({address: {field path: value}})
    applied and validated; raises :class:`LabError` (a SettingsValidationError for a bad
    value) when a patch cannot take effect."""
    comps, conns, procs = recipe.copy()
    by_address = dict(_walk(comps, recipe.root))
    for address, updates in patches.items():
        comp = by_address.get(address)
        if comp is None:
            raise LabError(
                f"{address!r} is not a component of the launched pipeline (its components: "
                f"{sorted(by_address)})."
            )
        current = comp.SETTINGS
        if current is None:
            raise LabError(f"{address} has no settings object to change.")
        new = build_update(spec_from_class(type(current)), current, updates, unit=address)
        comp.apply_settings(new)
    _check_configured(recipe.root, comps, patches)
    return comps, conns, procs


def _check_configured(
    root: str | None, comps: dict[str, Any], patches: Mapping[str, Mapping[str, Any]]
) -> None:
    """Run the collections' ``configure()`` on a trial copy, as ezmsg does at launch, and
    check that each patched value survives it."""
    from ezmsg.core.collection import Collection

    trial = copy.deepcopy(comps)

    def configure(comp: Any) -> None:
        if isinstance(comp, Collection):
            comp.configure()
        for child in comp.components.values():
            configure(child)

    for comp in trial.values():
        configure(comp)
    after = dict(_walk(trial, root))
    before = dict(_walk(comps, root))
    for address, updates in patches.items():
        for path in updates:
            want = get_path(before[address].SETTINGS, path)
            got = get_path(after[address].SETTINGS, path)
            if not settings_equal(want, got):
                parent = address.rpartition("/")[0]
                holder = _field_holding(before.get(parent), after[address].SETTINGS)
                raise LabError(
                    f"{address}.{path} = {want!r} does not survive the launch: its collection "
                    f"{parent}'s configure() sets it (to {got!r}). Sweep the collection's own "
                    f"setting instead: lab.sweep({parent!r}, {{'{holder}.{path}': [...]}}, "
                    "relaunch=True)."
                )


def _field_holding(collection: Any, settings: Any) -> str:
    """The field of a collection's settings that holds ``settings`` (what its
    configure() passes to the unit), or a placeholder."""
    import dataclasses

    own = getattr(collection, "SETTINGS", None)
    if own is not None and dataclasses.is_dataclass(own):
        for f in dataclasses.fields(own):
            if settings_equal(getattr(own, f.name, None), settings):
                return f.name
    return "<field>"
