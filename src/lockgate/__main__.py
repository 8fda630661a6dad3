"""``python -m lockgate``."""

from lockgate.cli.launch import main

main()
