"""Model tests. ``one_torch_thread``: import it into a test module to run that module's torch work on one thread.

Why: on a shared 2-core machine, tiny tensors on 2 intra-op threads spend most of their
time in thread barriers (measured here: 30 s instead of 3 s for 30 tiny training steps).
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
