"""A new home gets the image's starter files once; nothing of the researcher's is replaced."""

from hybrid_spawner.bootstrap.skeleton import MARK, populate_home


def test_starter_files_fill_only_what_a_new_home_lacks_and_only_once(tmp_path):
    skel, home = tmp_path / "skel", tmp_path / "home"
    (skel / "examples").mkdir(parents=True)
    (skel / "welcome.ipynb").write_text("image welcome")
    (skel / "examples" / "plot.ipynb").write_text("image plot")
    (skel / "link").symlink_to("/etc/passwd")
    home.mkdir()
    (home / "welcome.ipynb").write_text("restored from the bucket")

    assert populate_home(str(skel), str(home)) == ["examples/plot.ipynb"]
    assert (home / "welcome.ipynb").read_text() == "restored from the bucket"
    assert (home / "examples" / "plot.ipynb").read_text() == "image plot"
    assert not (home / "link").exists() and (home / MARK).exists()

    (home / "examples" / "plot.ipynb").unlink()  # the researcher deleted it: it stays deleted
    assert populate_home(str(skel), str(home)) == []
    assert not (home / "examples" / "plot.ipynb").exists()


def test_a_missing_skeleton_copies_nothing(tmp_path):
    assert populate_home(str(tmp_path / "absent"), str(tmp_path)) == []
    assert not (tmp_path / MARK).exists()
