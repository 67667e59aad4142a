"""JSON for reports and artifacts that hold numpy values."""

import numpy as np


def json_default(value):
    """`default=` for json.dumps: numpy scalars and arrays as plain numbers and lists."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")
