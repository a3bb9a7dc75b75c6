import pytest

from semcoder_jax.execution import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    """One fork server for the execution tests (1 GiB per program: the machine is shared)."""
    with Sandbox(memory_bytes=1 << 30, timeout_s=10.0) as box:
        yield box
