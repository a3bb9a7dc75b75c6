"""Shared fixtures for the evaluation tests: one sandbox and one ground-truth cache per session."""

import pytest


@pytest.fixture(scope="session")
def sandbox():
    from semcoder_jax.execution import Sandbox

    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def gt_cache(tmp_path_factory, monkeypatch_session):
    path = tmp_path_factory.mktemp("eval_gt_cache")
    monkeypatch_session.setenv("SEMCODER_EVAL_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
