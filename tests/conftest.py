"""Test-wide settings: nothing a test does may touch the user's cache of prepared data sets."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    mp = pytest.MonkeyPatch()
    mp.setenv("RAMOS_CACHE", str(tmp_path_factory.mktemp("ramos-cache")))
    yield
    mp.undo()


@pytest.fixture
def one_thread() -> None:
    """Tiny networks: one torch thread avoids OpenMP barrier stalls on a shared, busy CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
