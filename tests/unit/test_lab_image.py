"""The base image cache: a stamp says which recipe built an image; purging removes only base images."""

from tsdeploy.lab import image


def test_an_image_without_the_current_stamp_is_not_ready(tmp_path):
    (tmp_path / "base-bookworm").mkdir()
    assert not image.is_ready("bookworm", tmp_path)
    (tmp_path / "base-bookworm" / ".tsdeploy-image").write_text("recipe=0\n")
    assert not image.is_ready("bookworm", tmp_path)
    (tmp_path / "base-bookworm" / ".tsdeploy-image").write_text(image._stamp("bookworm"))
    assert image.is_ready("bookworm", tmp_path)


def test_purge_removes_base_images_but_keeps_other_caches(tmp_path):
    for name in ("base-bookworm", "base-trixie.building", "artifacts"):
        (tmp_path / name).mkdir()
    (tmp_path / "base-bookworm.lock").touch()
    image.remove_images(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts"]


def test_lab_images_refuses_an_unknown_release_naming_the_ones_it_builds():
    from click.testing import CliRunner

    from tsdeploy.lab.cli import lab

    result = CliRunner().invoke(lab, ["images", "sid"])
    assert result.exit_code == 2
    assert "'sid' is not one of 'bookworm', 'trixie'" in result.output
