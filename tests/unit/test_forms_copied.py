"""``forms.copied``: what ``copy.deepcopy`` gives for a JSON-like value, without its cost."""

import copy
from datetime import UTC, date, datetime
from decimal import Decimal

from engine import forms


def test_a_copy_shares_no_dict_or_list_with_its_source():
    source = {"a": [1, {"b": [2, 3]}], "c": {"d": "x"}}
    copied = forms.copied(source)
    assert copied == source == copy.deepcopy(source)
    copied["a"][1]["b"].append(4)
    copied["c"]["d"] = "y"
    assert source == {"a": [1, {"b": [2, 3]}], "c": {"d": "x"}}


def test_values_nothing_changes_in_place_are_shared_the_others_deep_copied():
    when = datetime(2026, 12, 4, tzinfo=UTC)
    frozen = ("x", 1, (date(2026, 1, 1), Decimal("1.5")))
    mutable_in_tuple = ("x", [1, 2])
    source = {"when": when, "frozen": frozen, "set": {1, 2}, "mixed": mutable_in_tuple}
    copied = forms.copied(source)
    assert copied == source
    assert copied["when"] is when and copied["frozen"] is frozen
    # A set, or a tuple holding a list, could change under the copy: those are deep-copied.
    assert copied["set"] is not source["set"]
    assert copied["mixed"] is not mutable_in_tuple and copied["mixed"][1] is not mutable_in_tuple[1]
    copied["set"].add(3)
    copied["mixed"][1].append(3)
    assert source["set"] == {1, 2} and source["mixed"] == ("x", [1, 2])
