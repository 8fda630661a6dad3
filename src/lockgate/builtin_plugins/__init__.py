"""The plugins shipped with lockgate, each registered through the ``lockgate`` entry-point
group exactly like a third party's, so any of them can be disabled or replaced."""
