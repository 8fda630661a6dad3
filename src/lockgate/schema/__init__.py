"""Reading settings: YAML that keeps every key's line, and plain data structured into attrs
classes with errors that name the file line (or environment variable) and suggest the
key that was meant. It knows nothing of projects or plugins: the kernel reads
``lockgate.yaml`` with it, and plugins declare their settings classes for it (through
:mod:`lockgate.plugin`).
"""
