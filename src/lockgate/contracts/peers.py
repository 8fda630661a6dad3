"""What a validator sees of the rest of the project, read as it asks.

A validator's context (:class:`~lockgate.contracts.models.ValidationContext`) offers every
component the project knows (``staged``) and everything current in the subject's stage
(``current``). Read whole for every gate, that is one record per component, however many
thousands there are, for a promotion of one: the builtin validators only ever ask about
a few ids (the subject's own, its dependencies, the actions its workflows name). So the
kernel passes both as views that read on demand: asking about some ids
(:meth:`StagedPeers.with_ids`, :meth:`StagePointers.subset`, ``in``, ``[]``) reads those
ids only; iterating or counting reads everything once, as before, and keeps it.

:class:`ComponentsById` is the state store's optional capability behind
:meth:`StagedPeers.with_ids`: the components of some component ids, in every workspace,
through an index. A store without it costs only that: the kernel reads every component
and keeps those ids (:func:`components_by_id`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, overload

if TYPE_CHECKING:
    from lockgate.contracts.models import PeerComponent
    from lockgate.contracts.state import ComponentRecord, StateStore

__all__ = [
    "ComponentsById",
    "StagePointers",
    "StagedPeers",
    "components_by_id",
    "store_components_by_id",
]


class ComponentsById(Protocol):
    """``components_by_id(component_ids)``: every component whose ``component_id`` is one
    of ``component_ids``, in every workspace, sorted by ``component``: what
    ``[r for r in components() if r.component_id in component_ids]`` returns."""

    def components_by_id(self, component_ids: tuple[str, ...]) -> list[ComponentRecord]:
        """The components of those ids, sorted by ``component``."""


def store_components_by_id(store: object) -> ComponentsById | None:
    """``store`` when it offers :class:`ComponentsById`, else None."""
    offers = callable(getattr(store, "components_by_id", None))
    return store if offers else None  # type: ignore[return-value]


def components_by_id(state: StateStore, component_ids: Iterable[str]) -> list[ComponentRecord]:
    """The components of ``component_ids`` in every workspace, sorted by ``component``:
    through :class:`ComponentsById` when ``state`` offers it, else from every component."""
    ids = tuple(sorted(set(component_ids)))
    if not ids:
        return []
    index = store_components_by_id(state)
    if index is not None:
        return index.components_by_id(ids)
    wanted = set(ids)
    return [r for r in state.components() if r.component_id in wanted]


class StagedPeers(Sequence["PeerComponent"]):
    """The latest revision of every component the project knows, in every workspace, read
    when asked: ``with_ids`` reads only the ids it names (``some``); iterating, indexing or
    ``len`` reads every component once (``every``) and keeps them."""

    def __init__(
        self,
        every: Callable[[], Sequence[PeerComponent]],
        some: Callable[[tuple[str, ...]], Sequence[PeerComponent]],
    ) -> None:
        self._every, self._some = every, some
        self._all: tuple[PeerComponent, ...] | None = None
        self._by_id: dict[str, list[PeerComponent]] = {}

    def with_ids(self, component_ids: Iterable[str]) -> tuple[PeerComponent, ...]:
        """The peers whose ``component_id`` is one of ``component_ids``."""
        wanted = tuple(sorted(set(component_ids)))
        if self._all is not None:
            found = [p for i in wanted for p in self._by_id.get(i, ())]
            return tuple(sorted(found, key=lambda p: p.component))
        return tuple(self._some(wanted)) if wanted else ()

    def _loaded(self) -> tuple[PeerComponent, ...]:
        if self._all is None:
            loaded = tuple(self._every())
            by_id: dict[str, list[PeerComponent]] = {}
            for peer in loaded:
                by_id.setdefault(peer.component_id, []).append(peer)
            self._by_id, self._all = by_id, loaded  # validators' threads may race here
        return self._all

    @overload
    def __getitem__(self, index: int) -> PeerComponent: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PeerComponent]: ...

    def __getitem__(self, index: int | slice) -> PeerComponent | Sequence[PeerComponent]:
        return self._loaded()[index]

    def __len__(self) -> int:
        return len(self._loaded())

    def __iter__(self) -> Iterator[PeerComponent]:
        return iter(self._loaded())

    def __repr__(self) -> str:
        return "StagedPeers(<read on demand>)" if self._all is None else repr(self._all)


class StagePointers(Mapping[str, str]):
    """Component id -> the revision current in one stage, read when asked: ``[]``, ``in``,
    ``get`` and ``subset`` read only the ids they name (``some``, each id's answer kept);
    iterating or ``len`` reads the whole stage once (``every``) and keeps it."""

    def __init__(
        self,
        every: Callable[[], Mapping[str, str]],
        some: Callable[[tuple[str, ...]], Mapping[str, str]],
    ) -> None:
        self._every, self._some = every, some
        self._all: dict[str, str] | None = None
        self._known: dict[str, str | None] = {}

    def subset(self, component_ids: Iterable[str]) -> dict[str, str]:
        """The current revision of each of ``component_ids`` that the stage holds."""
        wanted = list(dict.fromkeys(component_ids))
        if self._all is not None:
            return {i: self._all[i] for i in wanted if i in self._all}
        missing = tuple(i for i in wanted if i not in self._known)
        if missing:
            found = self._some(missing)
            self._known.update({i: found.get(i) for i in missing})
        return {i: r for i in wanted if (r := self._known[i]) is not None}

    def __getitem__(self, component_id: str) -> str:
        if not isinstance(component_id, str):
            raise KeyError(component_id)
        found = self.subset((component_id,))
        return found[component_id]

    def __contains__(self, component_id: object) -> bool:
        return isinstance(component_id, str) and bool(self.subset((component_id,)))

    def _loaded(self) -> dict[str, str]:
        if self._all is None:
            self._all = dict(self._every())
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return "StagePointers(<read on demand>)" if self._all is None else repr(self._all)
