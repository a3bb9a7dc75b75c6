import json

from semcoder_jax.cli.main import main


def test_run_json(tmp_path, capsys):
    prog = tmp_path / "p.py"
    prog.write_text("def f(a, b):\n    return a * b\nprint('hi')\n")
    assert main(["exec", "run", str(prog), "--call", "f(6, 7)", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["status"] == "passed" and out["return_repr"] == "42" and out["stdout"] == "hi\n"
    assert {"stderr", "duration_s"} <= set(out)


def test_run_shows_the_programs_stderr(tmp_path, capsys):
    """Without ``--json`` only stdout was printed: warnings and logs the program wrote were lost."""
    prog = tmp_path / "p.py"
    prog.write_text("import sys\nprint('out')\nprint('careful', file=sys.stderr)\n")
    assert main(["exec", "run", str(prog)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("out\nstatus: passed") and captured.err == "careful\n"


def test_run_timeout_and_failure_exit_code(tmp_path, capsys):
    prog = tmp_path / "loop.py"
    prog.write_text("while True:\n    pass\n")
    assert main(["exec", "run", str(prog), "--timeout", "0.5", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "timeout"


def test_trace_formats(tmp_path, capsys):
    prog = tmp_path / "t.py"
    prog.write_text("def f(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n")
    assert main(["exec", "trace", str(prog), "--call", "f(3)", "--format", "concise"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[L6] {'s': 0} [/L6]") and "[OUTPUT]\n3\n[/OUTPUT]" in out
    assert main(["exec", "trace", str(prog), "--call", "f(3)"]) == 0
    assert json.loads(capsys.readouterr().out)["return_repr"] == "3"


def test_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["exec", "run", str(tmp_path / "missing.py")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.py" in err and len(err.splitlines()) == 1
    prog = tmp_path / "p.py"
    prog.write_text("x = 1\n")
    assert main(["exec", "run", str(prog), "--timeout", "-1"]) == 2
    assert "--timeout" in capsys.readouterr().err
    assert main(["exec", "run", str(prog), "--timeout", "inf"]) == 2
    assert "--timeout" in capsys.readouterr().err


def test_run_reads_the_file_as_python_does(tmp_path, capsys):
    """The file was read as bare UTF-8: a BOM (Windows editors write one) became a SyntaxError in the
    program, and a ``coding:`` line was ignored, though ``python prog.py`` runs both."""
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbfdef f(x):\n    return x + 1\n")
    assert main(["exec", "run", str(bom), "--call", "f(1)", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["return_repr"] == "2"
    latin = tmp_path / "latin.py"
    latin.write_bytes("# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n".encode("latin-1"))
    assert main(["exec", "run", str(latin), "--call", "s", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["return_repr"] == "'caf\xe9'"
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"# coding: no-such-codec\nx = 1\n")
    assert main(["exec", "run", str(bad)]) == 2
    assert "bad.py" in capsys.readouterr().err


def test_trace_refuses_limits_below_one(tmp_path, capsys):
    """``--max-repr 0`` printed the trace without its ``[L6] {'s': 0}`` line, and ``--max-events 0`` (or -1)
    a trace truncated before its first event, both with exit code 0."""
    prog = tmp_path / "t.py"
    prog.write_text("def f(n):\n    s = 0\n    return s\n")
    for flag in ("--max-repr", "--max-events"):
        for value in ("0", "-1"):
            assert main(["exec", "trace", str(prog), "--call", "f(3)", flag, value]) == 2
            err = capsys.readouterr().err.strip()
            assert flag in err and len(err.splitlines()) == 1
