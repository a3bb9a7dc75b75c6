import semcoder_jax.cli.main as cli


def test_demo_refuses_a_used_out_folder_before_running_any_step(tmp_path, monkeypatch, capsys):
    """A second ``semcoder demo`` into the same folder rebuilt the data and trained, then failed at the
    export step, whose ``--out`` must be new."""
    out = tmp_path / "demo"
    (out / "hf").mkdir(parents=True)
    (out / "hf" / "config.json").write_text("{}")
    steps = []
    real_main = cli.main
    monkeypatch.setattr(cli, "main", lambda argv: steps.append(argv) or 0)
    assert real_main(["demo", "--out", str(out)]) == 2
    assert steps == [] and str(out) in capsys.readouterr().err


def test_demo_steps_keep_an_out_folder_with_spaces_and_a_hash(tmp_path, monkeypatch):
    """``--out 'runs/try #2'`` built the data into ``runs/try`` and trained from there: YAML read the
    ``#`` in each step's ``key=value`` as a comment."""
    from data_pipeline.cli import load
    from semcoder_jax.train.config import load_train_config

    out = tmp_path / "my runs" / "try #2"
    steps = []
    real_main = cli.main
    monkeypatch.setattr(cli, "main", lambda argv: steps.append(argv) or 0)
    assert real_main(["demo", "--out", str(out)]) == 0
    build, train = steps[0], steps[1]
    assert load(build[3], build[4:]).output_dir == str(out / "data")
    cfg = load_train_config(None, train[3:])
    assert (cfg.run_dir, cfg.data.path) == (str(out / "train"), str(out / "data"))


def test_demo_refuses_steps_or_a_limit_below_one_before_running_any_step(tmp_path, monkeypatch, capsys):
    """``--eval-limit 0`` built the data and trained for minutes, then the evaluation refused the limit."""
    steps = []
    real_main = cli.main
    monkeypatch.setattr(cli, "main", lambda argv: steps.append(argv) or 0)
    for flag in ("--train-steps", "--eval-limit"):
        assert real_main(["demo", "--out", str(tmp_path / flag), flag, "0"]) == 2
        assert flag in capsys.readouterr().err
    assert steps == []


def test_demo_exports_its_model_with_the_tokenizer_it_was_trained_with(tmp_path):
    """The demo's HF folder had no tokenizer files, so it could not be served on its own."""
    from pathlib import Path

    from semcoder_jax import DEFAULT_TOKENIZER_DIR
    from semcoder_jax.cli.demo import steps

    (export,) = [cmd for name, cmd in steps(tmp_path, 3, 2) if cmd[:2] == ["convert", "orbax-to-hf"]]
    tokenizer = Path(export[export.index("--tokenizer") + 1])
    assert tokenizer == Path(DEFAULT_TOKENIZER_DIR) and (tokenizer / "tokenizer.json").is_file()


def test_an_interrupted_demo_step_is_reported_as_an_interrupt_not_a_failure(tmp_path, monkeypatch, capsys):
    """Ctrl-C in a step read "step 2 (train the tiny model) failed with exit code 130", and a rerun then
    refused the used --out folder without saying so beforehand."""
    steps = []
    real_main = cli.main
    monkeypatch.setattr(cli, "main", lambda argv: steps.append(argv) or (130 if argv[0] == "train" else 0))
    assert real_main(["demo", "--out", str(tmp_path / "demo")]) == 130
    err = capsys.readouterr().err
    assert "failed" not in err and "semcoder demo: interrupted; the --out folder is kept" in err
    assert [s[0] for s in steps] == ["data", "train"]
