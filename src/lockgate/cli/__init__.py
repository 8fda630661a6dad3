"""The ``lockgate`` command line: click commands that render results and decide nothing."""
