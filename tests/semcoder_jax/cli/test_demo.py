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
