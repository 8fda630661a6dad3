"""A session: one unit of work over a project.

:class:`~lockgate.core.project.Project` is the configured project (configuration,
plugins, hooks, the factory that builds each role). A :class:`Session` is what an
operation works with: the roles it resolved (state store, content store, source, each
stage's targets), who is acting, and whether the operations a crash interrupted have been
settled. Settling is an explicit step (``lockgate.operations.recover.settle``) that every
operation takes first, once per session; opening a role never runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lockgate.contracts.content import ContentStore
from lockgate.contracts.identity import Identity
from lockgate.contracts.lock_set import store_lock_set
from lockgate.contracts.locks import LockOwner, locks_for
from lockgate.contracts.read_batch import Ask
from lockgate.contracts.source import Source
from lockgate.contracts.state import StateStore
from lockgate.contracts.target import Target
from lockgate.core.config import Config, ConfigLayers
from lockgate.core.hooks import HookRunner
from lockgate.core.plugins import PluginSet
from lockgate.core.project import Project
from lockgate.core.roles import Roles
from lockgate.errors import MissingCapabilityError

__all__ = ["LOCK_LEASE", "Session", "as_session"]

LOCK_LEASE = 300.0
"""Seconds a lock holder is presumed working (``lockgate unlock`` respects it)."""


class Session:
    """One unit of work: the project, the roles it resolved, and its recovery step.

    Roles are resolved on first use by the project's factory, which keeps them until the
    project is closed (so every session of one project shares its state store
    connection); each stage's targets are built once per session.
    ``settled`` is None until the session settled interrupted operations, then what was
    settled (see ``lockgate.operations.recover.settle``).
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self.settled: list[Any] | None = None
        self._targets: dict[str, list[Target]] = {}
        self._held: dict[str, bool] = {}  # the locks held now: name -> shared
        self.memo: StateStore | None = None  # a planning pass's reads (operations.read_memo)

    # ------------------------------------------------------------------ roles

    def state(self) -> StateStore:
        """The state store (role ``state``, ``state.store``)."""
        return self.memo if self.memo is not None else self.project.state()

    def content(self) -> ContentStore:
        """The content store (role ``content``, ``content.store``)."""
        return self.project.content()

    def source(self) -> Source:
        """The component source (role ``source``, ``source.name``)."""
        return self.project.source()

    def targets(self, stage: str) -> list[Target]:
        """The targets of ``stage``, built once per session."""
        if stage not in self._targets:
            section = self.project.config.stages[stage]
            self._targets[stage] = [
                self.project.roles.build("target", t.kind, {**t.options, "stage": stage})
                for t in section.target_list()
            ]
        return self._targets[stage]

    @contextlib.contextmanager
    def lock(
        self,
        operation: str,
        *,
        name: str = "operation",
        shared: bool = False,
        components: Collection[str] | None = None,
        timeout: float | None = None,
        reads: Sequence[Ask] = (),
    ) -> Iterator[LockOwner]:
        """Lock ``name`` for ``operation`` (or a switch of ``components``: ``locks_for``), but
        not what this session holds, waiting up to ``timeout`` (``state.lock_timeout``); the
        owner as granted. Locks still to take are one ``lock_set`` call (``LockSet``; with
        ``reads``, the asks of the first batch of reads under them), else nested ``lock``
        calls in order. An unmet ``plugins.require`` stops it; once held, ``before_change``."""
        self.project.check_required()
        state = self.locking_state()
        wait = self.config.state.lock_timeout if timeout is None else timeout
        wanted = [
            (lock_name, lock_shared)
            for lock_name, lock_shared in locks_for(name, shared, components)
            if not self.holds(lock_name, exclusive=not lock_shared)
        ]
        together = store_lock_set(state) if len(wanted) > 1 else None
        with contextlib.ExitStack() as stack:
            granted = owner = LockOwner.current(operation)
            if together is not None:  # one call (on a server: one round trip) for them all
                locks = together.lock_set(
                    wanted, owner=owner, lease=LOCK_LEASE, timeout=wait, reads=reads
                )
                granted = stack.enter_context(locks)
            for lock_name, lock_shared in wanted:
                if together is None:
                    lock = state.lock(
                        lock_name, owner=owner, lease=LOCK_LEASE, timeout=wait, shared=lock_shared
                    )
                    granted = stack.enter_context(lock)
                stack.callback(self._held.pop, lock_name, None)
                self._held[lock_name] = lock_shared
            if self.project.before_change is not None:
                self.project.before_change(operation)
            yield granted

    def holds(self, name: str, *, exclusive: bool = False) -> bool:
        """Whether this session holds lock ``name`` now (``exclusive``: not shared)."""
        return name in self._held and not (exclusive and self._held[name])

    def locking_state(self) -> StateStore:
        """The state store, checked to provide the locks (``lock``, ``holder``,
        ``break_lock``): a store written before locks were its job is one clear error."""
        state = self.state()
        if not all(callable(getattr(state, m, None)) for m in ("lock", "holder", "break_lock")):
            raise MissingCapabilityError(
                f"the state store {self.config.state.store!r} provides no locks (lock, "
                "holder and break_lock of lockgate.plugin.StateStore); upgrade the plugin "
                "that provides it, or select another with state.store"
            )
        return state

    # ------------------------------------------------------------------ the project

    @property
    def config(self) -> Config:
        """The kernel configuration."""
        return self.project.config

    @property
    def layers(self) -> ConfigLayers:
        """The configuration layers, with where each value came from."""
        return self.project.layers

    @property
    def hooks(self) -> HookRunner:
        """The hook runner."""
        return self.project.hooks

    @property
    def plugins(self) -> PluginSet:
        """The loaded plugins."""
        return self.project.plugins

    @property
    def roles(self) -> Roles:
        """The role factory (provider hooks)."""
        return self.project.roles

    @property
    def settings(self) -> Mapping[str, Any]:
        """Each plugin's settings, by plugin name."""
        return self.project.settings

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the project was opened with."""
        return self.project.environ

    @property
    def root(self) -> Path | None:
        """The project root (None outside a project)."""
        return self.project.root

    @property
    def actor(self) -> str:
        """Who is acting (see :attr:`Project.actor`)."""
        return self.project.actor

    @property
    def identity(self) -> Identity:
        """Who is acting and how that is known (see :attr:`Project.identity`)."""
        return self.project.identity

    @property
    def stage_names(self) -> list[str]:
        """The ladder, in order."""
        return self.project.stage_names

    def check_stage(self, name: str | None) -> str:
        """``name`` if it is a configured stage (None: the first stage), else an error."""
        return self.project.check_stage(name)

    @property
    def state_dir(self) -> Path:
        """``.lockgate/`` beside ``lockgate.yaml``."""
        return self.project.state_dir

    def require_root(self) -> Path:
        """The project root, or a clear error when there is no project."""
        return self.project.require_root()


def as_session(where: Session | Project) -> Session:
    """``where`` itself, or a new session over the project ``where``.

    Operations receive a session; taking a project too keeps the public Python API
    (``Validation(project)``, ``lockgate.integration``) and scripts written against it
    working.
    """
    return where if isinstance(where, Session) else Session(where)
