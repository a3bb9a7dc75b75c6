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
