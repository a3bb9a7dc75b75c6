"""``semcoder train``'s command line (the trainer itself is tested under tests/semcoder_jax/train/)."""

import pytest

import semcoder_jax.train.trainer as trainer
from semcoder_jax.cli.main import main


def test_a_resumed_train_logs_no_orbax_read_only_warnings(tmp_path, monkeypatch, caplog, save_tiny_checkpoint):
    """Every resume printed Orbax's "Given directory is read only" twice per checkpoint look-up, which
    reads as if the run folder could not be written; generate, convert and eval already hid it."""
    from absl import logging as absl_logging

    from semcoder_jax.checkpoint import latest_step

    ckpt = tmp_path / "run" / "checkpoints"
    save_tiny_checkpoint(ckpt, 3)
    seen = []
    monkeypatch.setattr(trainer, "train", lambda cfg: seen.append(latest_step(ckpt)))  # as a resume looks up its step
    before = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.WARNING)  # as in a fresh process
    try:
        with caplog.at_level("WARNING"):
            assert main(["train", "--config", "tiny-cpu", f"run_dir={tmp_path / 'run'}"]) == 0
    finally:
        absl_logging.set_verbosity(before)
    assert seen == [3]
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == []


def test_a_second_train_in_a_run_folder_in_use_is_refused(tmp_path, monkeypatch, capsys):
    """Two trains on one run_dir both resumed from its checkpoint, both wrote checkpoints (racing to
    delete old ones) and metrics.jsonl got every step twice; both exited 0."""
    from semcoder_jax.cli.train import run_dir_lock
    from semcoder_jax.errors import SemcoderError

    run_dir = tmp_path / "run"
    seen = []

    def second_train(cfg):  # what a second `semcoder train` there meets (flock: per open file, so per process)
        with pytest.raises(SemcoderError) as e, run_dir_lock(run_dir):
            pass
        seen.append(str(e.value))

    monkeypatch.setattr(trainer, "train", second_train)
    assert main(["train", "--config", "tiny-cpu", f"run_dir={run_dir}"]) == 0
    assert len(seen) == 1 and seen[0].startswith(f"run_dir {run_dir}: another `semcoder train` (pid ")
    assert seen[0].endswith("is training there; wait for it to end, or give another run_dir")
    with run_dir_lock(run_dir):  # released when the first one ended
        pass
    (tmp_path / "file").write_text("")
    assert main(["train", "--config", "tiny-cpu", f"run_dir={tmp_path / 'file' / 'run'}"]) == 2
    assert capsys.readouterr().err.strip().endswith("cannot write there (Not a directory)")


@pytest.mark.parametrize("process", [0, 1])
def test_every_process_of_a_job_stops_when_process_0_cannot_lock_the_run_folder(tmp_path, monkeypatch, capsys, process):
    """Only process 0 locks the run_dir (the others share it). When another train held it, process 0
    stopped alone and the other processes went on into training, to wait for it in their first
    collective until JAX's timeouts; now each of them stops at once too, saying why."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    from semcoder_jax.cli.train import run_dir_lock
    from semcoder_jax.train import mesh

    run_dir = tmp_path / "run"
    monkeypatch.setattr(mesh, "maybe_initialize_distributed", lambda: None)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: process)
    monkeypatch.setattr(multihost_utils, "process_allgather", lambda failed: np.array([True, bool(failed)]))
    trained = []
    monkeypatch.setattr(trainer, "train", trained.append)
    with run_dir_lock(run_dir):  # another job's process 0 is training there
        assert main(["train", "--config", "tiny-cpu", f"run_dir={run_dir}"]) == 2
    assert not trained
    err = capsys.readouterr().err.strip()
    if process == 0:
        assert err.endswith("is training there; wait for it to end, or give another run_dir")
    else:
        assert err.endswith(f"run_dir {run_dir}: process(es) [0] could not lock it (their logs say which); every "
                            "process stops")


def test_a_run_folder_that_cannot_be_locked_trains_with_a_warning(tmp_path, monkeypatch, caplog):
    """A file system without locks (ENOLCK on NFS without a lock service) must not stop training, but
    the user is told that nothing guards the folder against a second train."""
    import errno
    import fcntl

    from semcoder_jax.cli.train import run_dir_lock

    def no_locks(f, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level("WARNING", logger="semcoder_jax.cli.train"), run_dir_lock(tmp_path / "run"):
        pass
    assert f"run_dir {tmp_path / 'run'}: cannot lock it (No locks available); training without the guard" in caplog.text


def test_ctrl_c_in_the_training_loop_saves_before_stopping_and_a_second_stops_at_once(tmp_path, monkeypatch, capsys,
                                                                                     save_tiny_checkpoint):
    """Ctrl-C lost every step since the last checkpoint (the demo saves only at its end) and said
    nothing; now the first one stops the run as SIGTERM does, after saving."""
    import signal

    run_dir = tmp_path / "run"

    def fake_train(cfg):  # the trainer's loop: its SIGTERM handler is installed while it runs
        t = trainer.Trainer.__new__(trainer.Trainer)
        t._stop_requested, t.total_steps = False, 10
        previous = signal.signal(signal.SIGTERM, t._on_sigterm)
        try:
            signal.raise_signal(signal.SIGINT)
            assert t._stop_requested  # the loop saves after this step and ends
            save_tiny_checkpoint(run_dir / "checkpoints", 7)
            with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C does not wait for the save
                signal.raise_signal(signal.SIGINT)
        finally:
            signal.signal(signal.SIGTERM, previous)

    monkeypatch.setattr(trainer, "train", fake_train)
    before = signal.getsignal(signal.SIGINT)
    assert main(["train", "--config", "tiny-cpu", f"run_dir={run_dir}"]) == 130
    err = capsys.readouterr().err
    assert "Ctrl-C: press it again to stop at once, without saving" in err
    assert f"stopped by Ctrl-C with step 7 saved in {run_dir / 'checkpoints'}; rerun the same command to resume" in err
    assert signal.getsignal(signal.SIGINT) is before

    def interrupted_while_loading(cfg):  # no loop yet, nothing to save: an interrupt as usual
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(trainer, "train", interrupted_while_loading)
    assert main(["train", "--config", "tiny-cpu", f"run_dir={tmp_path / 'other'}"]) == 130
    assert capsys.readouterr().err.strip() == ("semcoder train: interrupted; rerun the same command to resume from "
                                               "the run folder's latest checkpoint")


def test_ctrl_c_at_the_last_step_says_the_run_finished(tmp_path, monkeypatch, capsys, save_tiny_checkpoint):
    """A Ctrl-C during the last step saved it and said "rerun the same command to resume", though a
    rerun finds nothing to train."""
    import signal

    run_dir = tmp_path / "run"

    def last_step_interrupted(cfg):
        t = trainer.Trainer.__new__(trainer.Trainer)
        t._stop_requested, t.total_steps = False, 7
        previous = signal.signal(signal.SIGTERM, t._on_sigterm)
        try:
            signal.raise_signal(signal.SIGINT)
            save_tiny_checkpoint(run_dir / "checkpoints", 7)  # the last step, saved as the run ends
        finally:
            signal.signal(signal.SIGTERM, previous)

    monkeypatch.setattr(trainer, "train", last_step_interrupted)
    assert main(["train", "--config", "tiny-cpu", f"run_dir={run_dir}"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"semcoder train: Ctrl-C came at the end of the run: it finished, with its last step (7) saved "
                        f"in {run_dir / 'checkpoints'}; nothing is left to resume")
    assert "rerun" not in err


@pytest.mark.slow
def test_an_init_from_hf_folder_that_does_not_exist_is_one_line(tmp_path, capsys):
    """A mistyped `init_from=hf:DIR` ended in a huggingface_hub traceback (the path read as a repo id)."""
    missing = tmp_path / "no-such-model"
    assert main(["train", "--config", "tiny-cpu", f"run_dir={tmp_path / 'run'}", f"init_from=hf:{missing}",
                 "max_steps=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"semcoder train: error: init_from 'hf:{missing}': cannot load model '{missing}': "
                          f"no such folder, nor a hub id")
