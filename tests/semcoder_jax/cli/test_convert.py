"""``semcoder convert``'s command line (the conversion itself is tested under tests/semcoder_jax/convert/)."""

from semcoder_jax.cli.main import main


def test_an_export_is_readable_by_others_as_a_folder_made_by_mkdir(tmp_path, capsys, save_tiny_checkpoint):
    """The HF folder came out mode 0700 (the temporary folder's, renamed into place): on a shared
    cluster another user's vLLM server or teammate could not read the export."""
    run = tmp_path / "run"
    save_tiny_checkpoint(run / "checkpoints", 2)
    out = tmp_path / "hf"
    assert main(["convert", "orbax-to-hf", "--checkpoint", str(run / "checkpoints"), "--out", str(out),
                 "--dtype", "float32"]) == 0
    (tmp_path / "made").mkdir()
    assert out.stat().st_mode & 0o777 == (tmp_path / "made").stat().st_mode & 0o777
    assert (out / "model.safetensors").is_file()

    # A run folder where its checkpoints folder was meant: the error says where they are.
    assert main(["convert", "orbax-to-hf", "--checkpoint", str(run), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(f"a run folder? its checkpoints are in {run / 'checkpoints'}")
    assert not (tmp_path / "x").exists()


def test_an_out_below_a_file_is_one_line(tmp_path, capsys):
    """`--out FILE/hf` ended in a FileExistsError traceback."""
    taken = tmp_path / "afile"
    taken.write_text("")
    assert main(["convert", "hf-to-orbax", "--hf-dir", str(tmp_path), "--out", str(taken / "ckpt")]) == 2
    assert capsys.readouterr().err.strip() == (f"semcoder convert: error: --out {taken / 'ckpt'}: cannot make its "
                                               f"folder {taken} (File exists)")


def test_hf_to_orbax_takes_a_hub_id_at_the_commit_its_revision_names(tmp_path, monkeypatch, capsys, hub):
    """As eval and generate do: the branch, tag or commit is resolved once and its snapshot converted."""
    import semcoder_jax.convert as convert

    a, b = "a" * 40, "b" * 40
    hub.snapshot(a), hub.snapshot(b), hub.point("main", a), hub.point("v1", b)
    converted = []
    monkeypatch.setattr(convert, "hf_to_orbax", lambda hf_dir, out, **kw: converted.append(hf_dir) or out)
    argv = ["convert", "hf-to-orbax", "--hf-dir", "org/name", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    assert converted[-1] == str(hub.repo / "snapshots" / a)
    assert capsys.readouterr().out.strip().endswith(f"(hub model org/name at commit {a})")
    assert main([*argv, "--revision", "v1"]) == 0 and converted[-1] == str(hub.repo / "snapshots" / b)
    assert main([*argv, "--revision", "c" * 40]) == 2 and len(converted) == 2
    assert "org/name" in capsys.readouterr().err
    local = tmp_path / "local"
    local.mkdir()
    assert main(["convert", "hf-to-orbax", "--hf-dir", str(local), "--out", str(tmp_path / "o2"), "--revision", "v1"]) == 2
    assert "--revision v1: a hub model's" in capsys.readouterr().err and len(converted) == 2
