"""``@record``: attrs.frozen with shared repr, eq and hash that behave as attrs' own."""

from __future__ import annotations

import attrs
import pytest

from lockgate.contracts.records import record


@record
class Point:
    x: int
    y: int = 0
    note: str = attrs.field(default="", eq=False, repr=False)


@record
class Other:
    x: int
    y: int = 0


@attrs.frozen
class Reference:
    x: int
    y: int = 0
    note: str = attrs.field(default="", eq=False, repr=False)


def test_repr_eq_and_hash_match_attrs() -> None:
    a, b = Point(1, 2, note="a"), Point(1, 2, note="b")
    ra, rb = Reference(1, 2, note="a"), Reference(1, 2, note="b")
    assert repr(a) == repr(ra).replace("Reference", "Point") == "Point(x=1, y=2)"
    assert (a == b, a != b) == (ra == rb, ra != rb) == (True, False)
    assert hash(a) == hash(b)
    assert a != Point(1, 3) and hash(a) != hash(Point(1, 3))
    assert len({a, b, Point(1, 3)}) == 2


def test_instances_of_other_classes_are_never_equal() -> None:
    assert Point(1, 2) != Other(1, 2)
    assert (Point(1, 2) == (1, 2)) is False
    assert Point(1, 2).__eq__(Other(1, 2)) is NotImplemented


def test_still_frozen_slotted_and_evolvable() -> None:
    p = Point(1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    assert not hasattr(p, "__dict__")
    assert attrs.evolve(p, y=5) == Point(1, 5)
    assert attrs.asdict(p) == {"x": 1, "y": 0, "note": ""}
