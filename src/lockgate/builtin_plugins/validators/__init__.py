"""The builtin validators: one plugin per module, each configurable and removable.

Each is registered under its own entry-point name (``manifest``, ``syntax``, ``limits``,
``secrets``, ``dependencies``, ``conflicts``, ``workflows``, ``approvals``), takes its
settings from ``plugins.<name>:`` in ``lockgate.yaml``, and is switched off with
``plugins: {disable: [<name>]}``.
"""
