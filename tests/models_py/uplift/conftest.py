"""Every uplift test fits and predicts single-threaded: OpenMP (HistGradientBoosting) and BLAS
spin-wait on a busy 2-core machine, which makes a one-second test take twenty."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(limits=1):
        yield
