"""write_row_: a step's metrics land in the next row of the ring, and the counter wraps."""

import pytest
import torch
from fastinfo.kernels import metric_ring


def test_rows_fill_in_order_and_wrap():
    table, row = torch.zeros(3, 3), torch.zeros(1, dtype=torch.long)
    per_code = torch.tensor([0.25, 2.5])
    for step in range(5):
        values = [torch.tensor(step + 0.5), torch.tensor(-step, dtype=torch.bfloat16), per_code[1] * step]
        metric_ring.write_row_(values, table, row)
        assert row.item() == (step + 1) % 3
        assert table[step % 3].tolist() == [step + 0.5, -step, 2.5 * step]


@pytest.mark.parametrize(
    "values, table, row, msg",
    [
        ([torch.zeros(())], torch.zeros(2, 2), torch.zeros(1, dtype=torch.long), r"float32 \[n_rows, 1\]"),
        ([torch.zeros(())], torch.zeros(2, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.long), "float32"),
        ([torch.zeros(())], torch.zeros(2, 1), torch.zeros(1), "row must be one int64"),
        ([torch.zeros(2)], torch.zeros(2, 1), torch.zeros(1, dtype=torch.long), "values.0. must be one number"),
    ],
)
def test_bad_inputs(values, table, row, msg):
    with pytest.raises(ValueError, match=msg):
        metric_ring.write_row_(values, table, row)
