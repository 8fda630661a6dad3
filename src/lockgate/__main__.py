"""``python -m lockgate``."""

from lockgate.cli.main import main

main()
