import pytest

from phosjax._listing import counted, listing


@pytest.mark.parametrize(
    ("names", "limit", "sep", "as_list", "expected"),
    [
        ([], 3, ", ", False, ""),
        (["a", "b", "c"], 3, ", ", False, "a, b, c"),
        (["a", "b", "c", "d", "e"], 3, ", ", False, "a, b, c and 2 more"),
        (["a: 1, 2", "b: 3", "c: 4"], 1, "; ", False, "a: 1, 2; and 2 more"),
        (["a", "b"], 2, ", ", True, "['a', 'b']"),
        (["a", "b", "c"], 0, ", ", True, "[] and 3 more"),
        (["a", "b"], 0, ", ", False, "2 more"),
        (["a", "b"], 0, "; ", False, "2 more"),
        (("a", "b", "c"), 2, ", ", True, "['a', 'b'] and 1 more"),
    ],
)
def test_listing_shows_the_first_names_and_counts_the_rest(names, limit, sep, as_list, expected):
    assert listing(names, limit, sep, as_list=as_list) == expected


def test_counted_writes_thousands_apart_as_the_viewer_does():
    """It wrote '36928 numbers' where the viewer's counted writes '36,928 numbers'."""
    assert counted(36928, "number") == "36,928 numbers"
    assert counted(1, "param") == "1 param"
