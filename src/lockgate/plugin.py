"""The public plugin API: everything a lockgate plugin may import, and nothing else.

A plugin (builtin or third party) imports only this module (and :mod:`lockgate.testing`
in its tests); the kernel, the operations and the command line are private and change
without notice. ``__all__`` is kept exact by a test, and a test walks the imports of every
builtin and example plugin to hold them to it. Names are imported on first use (PEP 562),
so importing this module costs nothing at start-up. The guide: ``docs/plugins.md``; every
hook: :mod:`lockgate.hookspecs` and ``docs/hooks.md``.

Shape: module: every public name is listed three times (the imports type checkers read,
``__all__``, the table of where each name lives), one line each, and nothing else; its
length is the size of the API, checked name by name by tests/test_plugin_api.py.

Hooks
    :data:`hookimpl` marks an implementation; :data:`Register` is the callback provider
    hooks receive (``register(name, factory)``), factories receive a :class:`RoleContext`.

The context
    :class:`PluginContext` — what ``on_stage``, ``on_promote``, ``on_rollback`` and
    ``on_metrics_collect`` (as :class:`MetricsContext`) receive as ``context``, and what a
    plugin command gets from :func:`current_context` / :func:`pass_context`: project root,
    actor, the plugin's settings, the stage and its configuration, the output options,
    ``warn()`` and :class:`Operations` (stage, sync, validate).

Role contracts (Protocols) and their optional capabilities
    :class:`StateStore` (with its locks: :class:`LockOwner`, :func:`locked_error`; and the
    optional :class:`LockSet`, several locks taken in one call),
    :class:`ContentStore` (reads a :class:`Readable`; capabilities
    :class:`FileIngest`, :class:`Materializer`, :class:`Flushable`,
    :class:`LocalObjectFiles`, :class:`LostObjectsLedger`, :class:`CompletenessCheck`,
    :class:`DurabilitySwitch`; :func:`read_object` reads a small object checked,
    :func:`ingest_file` and :func:`materialize_files` use a capability or do without),
    :class:`Source` (capabilities :class:`LocalFiles`, :class:`Watchable`: :class:`WatchPaths`,
    :class:`WatchHint`; :class:`TrustsEvents`: a :class:`ChangeJournal`), :class:`Target`
    (receives a :class:`RevisionHandle`, returns :class:`Prepared`; capabilities
    :class:`Collectable`, what ``gc`` asks it to remove, and :class:`GroupSwitch`,
    several entries switched at once, :class:`PreparedGroup`);
    the content store's :class:`ReleaseCache` lays out directories.

Records that cross the boundary
    validation: :class:`Issue`, :class:`Severity`, :class:`ValidatorInfo`,
    :class:`ValidationSubject`, :class:`ValidationContext` (its views of the project,
    read as asked: :class:`StagedPeers`, :class:`StagePointers`), :class:`PeerComponent`,
    :class:`Decision`, :class:`ReadinessReport`, :class:`ComponentReadiness`; events:
    :class:`ChangeEvent`; sources:
    :class:`Component`, :class:`ComponentRef`, :class:`ComponentSpec`, :class:`Discovery`,
    :class:`FileStat`, :class:`ScannedFile`, :class:`ScannedFiles`, :class:`ScanResult`,
    :data:`LinkMode`; content: :class:`Manifest`, :class:`FileEntry`,
    :class:`ManifestDiff`; state: :class:`AuditEvent`, :class:`ChainedEvent`,
    :class:`EventFilter`, :class:`Pointer`, :class:`PointerChange`, :class:`Approval`,
    :class:`Intent`, :class:`RevisionRecord`, :class:`ComponentRecord`,
    :class:`StateCounts`, :class:`ComponentStatus`, :class:`StateSnapshot` (with the
    optional :class:`StateImport` capability, what ``state migrate`` writes through, and
    :class:`IntentLog`, closed intents too, what it reads,
    :class:`MoveWithEvents`, a pointer move recorded with the events before it,
    :class:`ReadBatch` with :class:`Ask` and :data:`BATCHABLE`, several reads in one call,
    :class:`LiveRevisions`, the revisions of a component ever live, in one query,
    :class:`RevisionLineage` with :class:`LineageStep`, a revision found by its id and
    its ancestors back to the last one live, each bounded by what it is about
    (:func:`walk_lineage` the reference; :func:`ordered_lineage` puts a query's steps
    in order),
    :class:`ComponentsById`, the components of some ids in every workspace,
    :class:`ValidationResults`, where gates keep validators' verdicts, and
    :class:`AccessTokens` with :class:`TokenRecord`, the server's bearer tokens);
    operations: :class:`StageResult`, :class:`SyncResult`.

Errors a plugin may raise (the tree is drawn in :mod:`lockgate.errors`)
    :class:`LockgateError` and every subclass: :class:`InputError`, :class:`ConfigError`,
    :class:`NotFoundError`, :class:`CorruptStateError`, :class:`ConflictError`,
    :class:`LockedError`, :class:`PluginError`, …; :func:`corrupt_record` builds the
    error for a stored record that breaks the rules, :func:`lost_object` the message for
    bytes a store lost.

Helpers
    the audit chain (:data:`GENESIS`, :func:`event_hash`, :func:`not_before`); a SQL
    store's filters (:func:`equal_clauses`, :func:`sql_where`, :meth:`EventFilter.sql`); names
    (:func:`check_name`, :func:`name_problem`, :func:`short`); digests
    (:func:`digest_bytes`, :func:`new_hasher`, :func:`hash_file`, :func:`hash_into`
    (bounded memory however large the file), :func:`check_paths`,
    :func:`check_path_limits`); time (:func:`now_iso`); durable files on local disk
    (:func:`fsync_dir`, :func:`syncfs`, :func:`write_durably`, :func:`boot_id`);
    :func:`gc_paused`; settings fields that hold a secret (:func:`secret`, shown through
    :func:`redacted`, never as they are); component specs (:data:`SPEC_FILE`,
    :func:`read_spec`); safe YAML
    (:func:`load_yaml_text`, :class:`YamlDocument`, :data:`MAX_YAML_BYTES`); settings
    (:func:`structure`, :func:`did_you_mean`); :func:`record` (``attrs.frozen``, cheaper
    to create); :func:`failpoint` (crash tests: ``LOCKGATE_FAILPOINTS``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from lockgate._startup import lazy_names

if TYPE_CHECKING:
    from lockgate._durability import (
        boot_id,
        fsync_dir,
        syncfs,
        write_durably,
    )
    from lockgate._startup import (
        gc_paused,
    )
    from lockgate.contracts.audit import (
        GENESIS,
        event_hash,
        not_before,
    )
    from lockgate.contracts.clock import (
        now_iso,
    )
    from lockgate.contracts.content import (
        CompletenessCheck,
        ContentStore,
        DurabilitySwitch,
        FileIngest,
        Flushable,
        LinkMode,
        LocalObjectFiles,
        LostObjectsLedger,
        Materializer,
        Readable,
        ReleaseCache,
        lost_object,
    )
    from lockgate.contracts.events import (
        BatchNotifier,
        Delivery,
        DeliveryError,
        EventDeliveries,
        Message,
        Notifier,
        batch_delivery,
        cloud_event,
        event_type,
        notifier_options,
        store_deliveries,
    )
    from lockgate.contracts.history import (
        LineageStep,
        LiveRevisions,
        RevisionLineage,
        ordered_lineage,
        walk_lineage,
    )
    from lockgate.contracts.lock_set import LockSet
    from lockgate.contracts.locks import (
        LockOwner,
        component_lock,
        locked_error,
        parent_lock,
    )
    from lockgate.contracts.manifest import (
        FileEntry,
        Manifest,
        ManifestDiff,
        check_path_limits,
        check_paths,
        digest_bytes,
        hash_file,
        hash_into,
        new_hasher,
    )
    from lockgate.contracts.models import (
        ChangeEvent,
        ComponentReadiness,
        ComponentStatus,
        Decision,
        Issue,
        PeerComponent,
        ReadinessReport,
        Register,
        RoleContext,
        Severity,
        StageResult,
        SyncResult,
        ValidationContext,
        ValidationSubject,
        ValidatorInfo,
    )
    from lockgate.contracts.moves import MoveWithEvents
    from lockgate.contracts.peers import ComponentsById, StagedPeers, StagePointers
    from lockgate.contracts.read_batch import BATCHABLE, Ask, ReadBatch, answer_each
    from lockgate.contracts.records import (
        record,
    )
    from lockgate.contracts.refs import (
        ComponentRef,
        check_name,
        check_revision,
        name_problem,
        short,
    )
    from lockgate.contracts.secrets import (
        redacted,
        secret,
    )
    from lockgate.contracts.source import (
        ChangeJournal,
        Component,
        ComponentSpec,
        Discovery,
        FileStat,
        LocalFiles,
        ScannedFile,
        ScannedFiles,
        ScanResult,
        Source,
        TrustsEvents,
        Watchable,
        WatchHint,
        WatchPaths,
        source_is_local,
    )
    from lockgate.contracts.state import (
        AccessTokens,
        Approval,
        AuditEvent,
        ChainedEvent,
        ComponentRecord,
        EventFilter,
        Intent,
        IntentLog,
        Pointer,
        PointerChange,
        RevisionRecord,
        StateCounts,
        StateImport,
        StateSnapshot,
        StateStore,
        TokenRecord,
        ValidationResults,
        corrupt_record,
        equal_clauses,
        generation_conflict,
        sql_where,
        status_conflict,
    )
    from lockgate.contracts.target import (
        Collectable,
        GroupSwitch,
        Prepared,
        PreparedGroup,
        RevisionHandle,
        Target,
        TransientError,
    )
    from lockgate.contracts.warm import (
        WARM_COOKIE_PREFIX,
        WARM_PROTOCOL,
        WARM_SOCKET_NAME,
        WARM_VERSION,
        warm_request_env,
        warm_socket_path,
    )
    from lockgate.core.content import (
        ingest_file,
        materialize_files,
        read_object,
    )
    from lockgate.core.context import (
        MetricsContext,
        Operations,
        PluginContext,
    )
    from lockgate.core.failpoints import (
        failpoint,
    )
    from lockgate.core.specs import (
        SPEC_FILE,
        read_spec,
    )
    from lockgate.errors import (
        AuthenticationError,
        ConfigError,
        ConflictError,
        CorruptStateError,
        EnvironmentFault,
        InputError,
        LockedError,
        LockgateError,
        MissingCapabilityError,
        MissingKeyError,
        NotFoundError,
        NotReadyError,
        PermissionDeniedError,
        PluginCallError,
        PluginError,
        PluginHookError,
        PluginLoadError,
        ProjectNotFoundError,
        RefusedError,
    )
    from lockgate.hookspecs import (
        hookimpl,
    )
    from lockgate.schema.structure import (
        did_you_mean,
        structure,
    )
    from lockgate.schema.yamlfile import (
        MAX_YAML_BYTES,
        YamlDocument,
        load_yaml_text,
    )

__all__ = [
    "BATCHABLE",
    "GENESIS",
    "MAX_YAML_BYTES",
    "SPEC_FILE",
    "WARM_COOKIE_PREFIX",
    "WARM_PROTOCOL",
    "WARM_SOCKET_NAME",
    "WARM_VERSION",
    "AccessTokens",
    "Approval",
    "Ask",
    "AuditEvent",
    "AuthenticationError",
    "BatchNotifier",
    "ChainedEvent",
    "ChangeEvent",
    "ChangeJournal",
    "Collectable",
    "CompletenessCheck",
    "Component",
    "ComponentReadiness",
    "ComponentRecord",
    "ComponentRef",
    "ComponentSpec",
    "ComponentStatus",
    "ComponentsById",
    "ConfigError",
    "ConflictError",
    "ContentStore",
    "CorruptStateError",
    "Decision",
    "Delivery",
    "DeliveryError",
    "Discovery",
    "DurabilitySwitch",
    "EnvironmentFault",
    "EventDeliveries",
    "EventFilter",
    "FileEntry",
    "FileIngest",
    "FileStat",
    "Flushable",
    "GroupSwitch",
    "InputError",
    "Intent",
    "IntentLog",
    "Issue",
    "LineageStep",
    "LinkMode",
    "LiveRevisions",
    "LocalFiles",
    "LocalObjectFiles",
    "LockOwner",
    "LockSet",
    "LockedError",
    "LockgateError",
    "LostObjectsLedger",
    "Manifest",
    "ManifestDiff",
    "Materializer",
    "Message",
    "MetricsContext",
    "MissingCapabilityError",
    "MissingKeyError",
    "MoveWithEvents",
    "NotFoundError",
    "NotReadyError",
    "Notifier",
    "Operations",
    "PeerComponent",
    "PermissionDeniedError",
    "PluginCallError",
    "PluginContext",
    "PluginError",
    "PluginHookError",
    "PluginLoadError",
    "Pointer",
    "PointerChange",
    "Prepared",
    "PreparedGroup",
    "ProjectNotFoundError",
    "ReadBatch",
    "Readable",
    "ReadinessReport",
    "RefusedError",
    "Register",
    "ReleaseCache",
    "RevisionHandle",
    "RevisionLineage",
    "RevisionRecord",
    "RoleContext",
    "ScanResult",
    "ScannedFile",
    "ScannedFiles",
    "Severity",
    "Source",
    "StagePointers",
    "StageResult",
    "StagedPeers",
    "StateCounts",
    "StateImport",
    "StateSnapshot",
    "StateStore",
    "SyncResult",
    "Target",
    "TokenRecord",
    "TransientError",
    "TrustsEvents",
    "ValidationContext",
    "ValidationResults",
    "ValidationSubject",
    "ValidatorInfo",
    "WatchHint",
    "WatchPaths",
    "Watchable",
    "YamlDocument",
    "answer_each",
    "batch_delivery",
    "boot_id",
    "check_name",
    "check_path_limits",
    "check_paths",
    "check_revision",
    "cloud_event",
    "component_lock",
    "corrupt_record",
    "current_context",
    "did_you_mean",
    "digest_bytes",
    "equal_clauses",
    "event_hash",
    "event_type",
    "failpoint",
    "fsync_dir",
    "gc_paused",
    "generation_conflict",
    "hash_file",
    "hash_into",
    "hookimpl",
    "ingest_file",
    "load_yaml_text",
    "locked_error",
    "lost_object",
    "materialize_files",
    "name_problem",
    "new_hasher",
    "not_before",
    "notifier_options",
    "now_iso",
    "ordered_lineage",
    "parent_lock",
    "pass_context",
    "read_object",
    "read_spec",
    "record",
    "redacted",
    "secret",
    "short",
    "source_is_local",
    "sql_where",
    "status_conflict",
    "store_deliveries",
    "structure",
    "syncfs",
    "walk_lineage",
    "warm_request_env",
    "warm_socket_path",
    "write_durably",
]

_EXPORTS: dict[str, str] = {
    "hookimpl": "lockgate.hookspecs",
    "ChangeEvent": "lockgate.contracts.models",
    "ComponentStatus": "lockgate.contracts.models",
    "Decision": "lockgate.contracts.models",
    "Issue": "lockgate.contracts.models",
    "MetricsContext": "lockgate.core.context",
    "Operations": "lockgate.core.context",
    "PeerComponent": "lockgate.contracts.models",
    "PluginContext": "lockgate.core.context",
    "Register": "lockgate.contracts.models",
    "RoleContext": "lockgate.contracts.models",
    "Severity": "lockgate.contracts.models",
    "ValidationContext": "lockgate.contracts.models",
    "ValidationSubject": "lockgate.contracts.models",
    "ValidatorInfo": "lockgate.contracts.models",
    "Approval": "lockgate.contracts.state",
    "AuditEvent": "lockgate.contracts.state",
    "ChainedEvent": "lockgate.contracts.state",
    "CompletenessCheck": "lockgate.contracts.content",
    "Component": "lockgate.contracts.source",
    "ComponentRecord": "lockgate.contracts.state",
    "ComponentSpec": "lockgate.contracts.source",
    "ContentStore": "lockgate.contracts.content",
    "Discovery": "lockgate.contracts.source",
    "DurabilitySwitch": "lockgate.contracts.content",
    "EventFilter": "lockgate.contracts.state",
    "equal_clauses": "lockgate.contracts.state",
    "sql_where": "lockgate.contracts.state",
    "FileIngest": "lockgate.contracts.content",
    "FileStat": "lockgate.contracts.source",
    "Flushable": "lockgate.contracts.content",
    "Materializer": "lockgate.contracts.content",
    "Readable": "lockgate.contracts.content",
    "ReleaseCache": "lockgate.contracts.content",
    "RevisionHandle": "lockgate.contracts.target",
    "read_object": "lockgate.core.content",
    "source_is_local": "lockgate.contracts.source",
    "ingest_file": "lockgate.core.content",
    "materialize_files": "lockgate.core.content",
    "Intent": "lockgate.contracts.state",
    "IntentLog": "lockgate.contracts.state",
    "MoveWithEvents": "lockgate.contracts.moves",
    "Ask": "lockgate.contracts.read_batch",
    "BATCHABLE": "lockgate.contracts.read_batch",
    "ReadBatch": "lockgate.contracts.read_batch",
    "answer_each": "lockgate.contracts.read_batch",
    "LiveRevisions": "lockgate.contracts.history",
    "LineageStep": "lockgate.contracts.history",
    "walk_lineage": "lockgate.contracts.history",
    "ordered_lineage": "lockgate.contracts.history",
    "RevisionLineage": "lockgate.contracts.history",
    "ComponentsById": "lockgate.contracts.peers",
    "StagedPeers": "lockgate.contracts.peers",
    "StagePointers": "lockgate.contracts.peers",
    "LinkMode": "lockgate.contracts.content",
    "LocalFiles": "lockgate.contracts.source",
    "LocalObjectFiles": "lockgate.contracts.content",
    "LostObjectsLedger": "lockgate.contracts.content",
    "Pointer": "lockgate.contracts.state",
    "PointerChange": "lockgate.contracts.state",
    "Prepared": "lockgate.contracts.target",
    "TransientError": "lockgate.contracts.target",
    "Collectable": "lockgate.contracts.target",
    "GroupSwitch": "lockgate.contracts.target",
    "PreparedGroup": "lockgate.contracts.target",
    "RevisionRecord": "lockgate.contracts.state",
    "ScanResult": "lockgate.contracts.source",
    "ScannedFile": "lockgate.contracts.source",
    "ScannedFiles": "lockgate.contracts.source",
    "Source": "lockgate.contracts.source",
    "StateCounts": "lockgate.contracts.state",
    "StateImport": "lockgate.contracts.state",
    "StateSnapshot": "lockgate.contracts.state",
    "StateStore": "lockgate.contracts.state",
    "ValidationResults": "lockgate.contracts.state",
    "AccessTokens": "lockgate.contracts.state",
    "TokenRecord": "lockgate.contracts.state",
    "Target": "lockgate.contracts.target",
    "WatchHint": "lockgate.contracts.source",
    "ChangeJournal": "lockgate.contracts.source",
    "TrustsEvents": "lockgate.contracts.source",
    "WatchPaths": "lockgate.contracts.source",
    "Watchable": "lockgate.contracts.source",
    "corrupt_record": "lockgate.contracts.state",
    "generation_conflict": "lockgate.contracts.state",
    "status_conflict": "lockgate.contracts.state",
    "lost_object": "lockgate.contracts.content",
    "FileEntry": "lockgate.contracts.manifest",
    "Manifest": "lockgate.contracts.manifest",
    "ManifestDiff": "lockgate.contracts.manifest",
    "check_path_limits": "lockgate.contracts.manifest",
    "check_paths": "lockgate.contracts.manifest",
    "digest_bytes": "lockgate.contracts.manifest",
    "hash_file": "lockgate.contracts.manifest",
    "hash_into": "lockgate.contracts.manifest",
    "new_hasher": "lockgate.contracts.manifest",
    "GENESIS": "lockgate.contracts.audit",
    "event_hash": "lockgate.contracts.audit",
    "not_before": "lockgate.contracts.audit",
    "ComponentRef": "lockgate.contracts.refs",
    "check_name": "lockgate.contracts.refs",
    "check_revision": "lockgate.contracts.refs",
    "name_problem": "lockgate.contracts.refs",
    "short": "lockgate.contracts.refs",
    "now_iso": "lockgate.contracts.clock",
    "failpoint": "lockgate.core.failpoints",
    "LockOwner": "lockgate.contracts.locks",
    "LockSet": "lockgate.contracts.lock_set",
    "locked_error": "lockgate.contracts.locks",
    "component_lock": "lockgate.contracts.locks",
    "parent_lock": "lockgate.contracts.locks",
    "boot_id": "lockgate._durability",
    "fsync_dir": "lockgate._durability",
    "syncfs": "lockgate._durability",
    "write_durably": "lockgate._durability",
    "gc_paused": "lockgate._startup",
    "record": "lockgate.contracts.records",
    "redacted": "lockgate.contracts.secrets",
    "secret": "lockgate.contracts.secrets",
    "SPEC_FILE": "lockgate.core.specs",
    "read_spec": "lockgate.core.specs",
    "did_you_mean": "lockgate.schema.structure",
    "structure": "lockgate.schema.structure",
    "MAX_YAML_BYTES": "lockgate.schema.yamlfile",
    "YamlDocument": "lockgate.schema.yamlfile",
    "load_yaml_text": "lockgate.schema.yamlfile",
    "StageResult": "lockgate.contracts.models",
    "SyncResult": "lockgate.contracts.models",
    "ComponentReadiness": "lockgate.contracts.models",
    "ReadinessReport": "lockgate.contracts.models",
    "ConfigError": "lockgate.errors",
    "ConflictError": "lockgate.errors",
    "CorruptStateError": "lockgate.errors",
    "EnvironmentFault": "lockgate.errors",
    "InputError": "lockgate.errors",
    "LockedError": "lockgate.errors",
    "LockgateError": "lockgate.errors",
    "MissingCapabilityError": "lockgate.errors",
    "MissingKeyError": "lockgate.errors",
    "NotFoundError": "lockgate.errors",
    "NotReadyError": "lockgate.errors",
    "PermissionDeniedError": "lockgate.errors",
    "AuthenticationError": "lockgate.errors",
    "PluginCallError": "lockgate.errors",
    "PluginError": "lockgate.errors",
    "PluginHookError": "lockgate.errors",
    "PluginLoadError": "lockgate.errors",
    "ProjectNotFoundError": "lockgate.errors",
    "RefusedError": "lockgate.errors",
    "BatchNotifier": "lockgate.contracts.events",
    "batch_delivery": "lockgate.contracts.events",
    "Delivery": "lockgate.contracts.events",
    "DeliveryError": "lockgate.contracts.events",
    "EventDeliveries": "lockgate.contracts.events",
    "Message": "lockgate.contracts.events",
    "Notifier": "lockgate.contracts.events",
    "cloud_event": "lockgate.contracts.events",
    "event_type": "lockgate.contracts.events",
    "store_deliveries": "lockgate.contracts.events",
    "notifier_options": "lockgate.contracts.events",
    "WARM_COOKIE_PREFIX": "lockgate.contracts.warm",
    "WARM_PROTOCOL": "lockgate.contracts.warm",
    "WARM_SOCKET_NAME": "lockgate.contracts.warm",
    "WARM_VERSION": "lockgate.contracts.warm",
    "warm_request_env": "lockgate.contracts.warm",
    "warm_socket_path": "lockgate.contracts.warm",
}

F = TypeVar("F", bound=Callable[..., Any])


def current_context(plugin: str | None = None) -> PluginContext:
    """The :class:`PluginContext` of the running plugin command.

    The project is opened exactly as the kernel's own commands open it: ``-C DIR``, else
    ``LOCKGATE_PROJECT``, else the nearest ``lockgate.yaml`` upwards, with ``--actor``,
    ``--json``, ``-v``/``-q`` and ``--strict-plugins`` applied, and opened once per
    command. ``plugin`` defaults to the plugin that registered the running command (its
    settings are ``context.settings``). Outside a ``lockgate`` command it is a
    :class:`PluginError`; with no project found, :class:`ProjectNotFoundError`.
    """
    import click

    from lockgate.errors import PluginError

    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        build = getattr(ctx.obj, "plugin_context", None)
        if build is not None:
            context: PluginContext = build(plugin)
            return context
        ctx = ctx.parent
    raise PluginError(
        "lockgate.plugin.current_context() was called outside a lockgate command; "
        "call it from a command registered through register_commands"
    )


def pass_context(f: F) -> F:
    """Decorate a plugin command so it receives :func:`current_context` as its first
    argument::

        @click.command("hello")
        @pass_context
        def hello(context: PluginContext) -> None:
            click.echo(f"{context.actor} in {context.project_root}")
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(current_context(), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


__getattr__, __dir__ = lazy_names(globals(), _EXPORTS)
