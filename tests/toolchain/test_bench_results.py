"""`make bench` results file: a partial run replaces only its suites' sections."""

from __future__ import annotations

from bench.common import merge_results

ORDER = ["a", "b", "c"]


def test_merge__full_run__writes_every_section_in_order() -> None:
    text = merge_results("old text", {"b": "B1\n", "a": "A1\n", "c": "C1\n"}, "when 1", ORDER)
    assert text.startswith("# Benchmark results\n\nwhen 1\n")
    assert text.index("A1") < text.index("B1") < text.index("C1")
    assert "old text" not in text


def test_merge__partial_run__replaces_only_its_section() -> None:
    first = merge_results("", {"a": "A1\n", "b": "B1\n"}, "when 1", ORDER)
    second = merge_results(first, {"b": "B2\n"}, "when 2", ORDER)
    assert "A1" in second and "B1" not in second and "B2" in second
    assert "_when 2_" in second and second.index("A1") < second.index("B2")
    assert second.count("<!-- suite:b -->") == 1
    third = merge_results(second, {"c": "C1\n"}, "when 3", ORDER)  # new suite: appended
    assert third.index("B2") < third.index("C1") and "A1" in third
    # a rerun is idempotent in shape
    assert merge_results(third, {"b": "B3\n"}, "w", ORDER).count("<!-- /suite:b -->") == 1
