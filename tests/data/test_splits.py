import numpy as np

from dr4sr.data.sequences import make_sequence_data
from dr4sr.data.splits import leave_one_out
from dr4sr.data.stats import sequence_stats


def test_leave_one_out_truncates_before_split():
    data = make_sequence_data([7, 8], [list(range(1, 61)), [5, 6, 7]], "mem")
    s = leave_one_out(data, max_len=50)
    # user 7: last 50 items are 11..60 -> train 11..58, valid 59, test 60; mining input keeps 1..58
    assert s.train[0].tolist() == list(range(11, 59))
    assert s.train_full[0].tolist() == list(range(1, 59))
    assert (s.valid_target.tolist(), s.test_target.tolist()) == ([59, 6], [60, 7])
    assert s.train[1].tolist() == [5]
    assert s.history("test")[1].tolist() == [5, 6]
    assert s.history("valid")[0].tolist() == list(range(11, 59))


def test_sequence_stats_table_form():
    st = sequence_stats([np.array([1, 2, 3]), np.array([2, 4])], num_items=4)
    assert st["interactions"] == 5 and st["avg_length"] == 2.5
    assert st["sparsity"] == 1 - 5 / (2 * 4)
    assert (st["min_length"], st["max_length"], st["items_used"]) == (2, 3, 4)
