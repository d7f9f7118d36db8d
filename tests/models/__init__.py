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


def train_on_speech(codec: torch.nn.Module, loss_fn, *, steps: int = 30, lr: float = 3e-3) -> tuple:
    """(losses before, losses after) ``steps`` Adam steps on four 0.5 s crops of one espeak-ng sentence."""
    from tests.factories import espeak_16k

    wav = torch.from_numpy(espeak_16k("Hello there, this is a short test of the codec.", voice="en"))
    batch = torch.stack([wav[i:i + 8000] for i in (2000, 6000, 12000, 18000)])
    opt = torch.optim.Adam(codec.parameters(), lr=lr)
    with torch.no_grad():
        before = loss_fn(codec(batch).recon, batch)
    for _ in range(steps):
        losses = loss_fn(codec(batch).recon, batch)
        opt.zero_grad()
        losses.total.backward()
        opt.step()
    with torch.no_grad():
        after = loss_fn(codec(batch).recon, batch)
    return before, after
