import os


def test_tensorflow_info_lines_are_hidden_unless_the_user_sets_a_level(monkeypatch, tmp_path):
    """TensorFlow's C++ INFO line at each epoch's end ("Local rendezvous is aborting with status:
    OUT_OF_RANGE") read like an error in every training run's output."""
    from semcoder_jax.cli.main import main

    prog = tmp_path / "p.py"
    prog.write_text("print(1)\n")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert main(["exec", "run", str(prog)]) == 0
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert main(["exec", "run", str(prog)]) == 0
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_an_unknown_flag_is_one_line_naming_the_subcommand(capsys):
    """A flag of another subcommand (or an override written `--key=value`) was reported under the
    top-level `usage: semcoder [-h] [--version] COMMAND ...`, naming no subcommand."""
    import pytest

    from semcoder_jax.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--config", "tiny-cpu", "--max_steps=3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [("semcoder train: error: unrecognized arguments: --max_steps=3 (config overrides "
                                 "take no dashes: max_steps=3; see semcoder train --help)")]
    with pytest.raises(SystemExit) as e:
        main(["exec", "run", "p.py", "--limit", "3"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "semcoder exec run: error: unrecognized arguments: --limit 3 (see semcoder exec run --help)"]


def test_an_interrupted_command_says_how_to_resume(monkeypatch, capsys):
    """Ctrl-C ended every command with exit code 130 and not a word: nothing said that a rerun resumes."""
    import data_pipeline.cli
    from semcoder_jax.cli.main import main

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(data_pipeline.cli, "_build", interrupted)
    assert main(["data", "build", "--config", "demo"]) == 130
    assert capsys.readouterr().err.strip() == ("semcoder data build: interrupted; rerun the same command to resume: "
                                               "finished shards are kept")


def test_data_stats_plots_that_cannot_be_written_are_one_line(monkeypatch, tmp_path, capsys):
    """`data stats DIR --plots FILE` ended in a FileExistsError traceback."""
    import data_pipeline.stats
    from semcoder_jax.cli.main import main

    monkeypatch.setattr(data_pipeline.stats, "load_report", lambda out: ({}, {}))
    monkeypatch.setattr(data_pipeline.stats, "format_report", lambda report, manifest: "report")
    taken = tmp_path / "manifest.json"
    taken.write_text("{}")
    assert main(["data", "stats", str(tmp_path), "--plots", str(taken)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"--plots {taken}: cannot write the plots there (File exists)")


def test_a_data_output_dir_that_cannot_be_made_is_one_line(monkeypatch, tmp_path, capsys):
    """`data build output_dir=FILE` (or a folder below one) ended in a FileExistsError traceback."""
    import data_pipeline.runner_local
    from semcoder_jax.cli.main import main

    def no_build(*a, **k):
        raise AssertionError("the build must not start")

    monkeypatch.setattr(data_pipeline.runner_local, "run", no_build)
    taken = tmp_path / "afile"
    taken.write_text("")
    for out in (taken, taken / "data"):
        assert main(["data", "build", "--config", "demo", f"output_dir={out}"]) == 2
        assert capsys.readouterr().err.strip() == f"semcoder data: error: output_dir {out}: cannot make the folder " + (
            "(File exists)" if out == taken else "(Not a directory)")


def test_a_hub_retry_warning_is_printed_once(monkeypatch, capsys):
    """Offline hub lookups printed each huggingface_hub retry warning twice: once by the hub's own
    handler and once by the root's, which absl's ``logging.basicConfig()`` adds when Orbax logs at
    import (and `semcoder train` sets up)."""
    import io
    import logging

    from huggingface_hub.utils import logging as hub_logging  # noqa: F401  (adds the hub's own handler)

    from semcoder_jax.cli.main import OWN_HANDLER_LOGGERS, main

    for name in OWN_HANDLER_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)  # as in a fresh process
    hub = logging.getLogger("huggingface_hub")
    own = io.StringIO()
    for handler in hub.handlers:
        monkeypatch.setattr(handler, "stream", own)
    root = io.StringIO()
    monkeypatch.setattr(logging.root, "handlers", [logging.StreamHandler(root)])  # as absl's basicConfig leaves it
    assert main([]) == 0  # any command sets it up; this one prints the help
    logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
    assert own.getvalue() == "Retrying in 1s [Retry 1/5].\n" and root.getvalue() == ""
    capsys.readouterr()
