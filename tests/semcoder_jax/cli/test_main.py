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
