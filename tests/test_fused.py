"""Layer groups of a fused job under the accumulator budget."""

import pytest

from layergeom.extraction.fused import layer_groups


def test_layer_groups_fit_the_budget():
    assert layer_groups(5, 100, None) == [[0, 1, 2, 3, 4]]
    assert layer_groups(5, 100, 2.5e-7) == [[0, 1], [2, 3], [4]]  # 250 bytes: two layers of 100
    assert layer_groups(3, 100, 1e-6) == [[0, 1, 2]]


def test_a_budget_below_one_layer_names_the_field_and_the_need():
    with pytest.raises(ValueError, match=r"extraction.accumulator_budget_gb .* \(1,000 bytes\)"):
        layer_groups(3, 1000, 1e-7)
