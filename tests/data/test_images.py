from __future__ import annotations

import pytest
from PIL import Image

from fishbear.core.errors import DataError
from fishbear.data.images import load_rgb


def test_load_rgb_converts_grey_and_names_corrupt_files(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("L", (5, 4), 7).save(grey)
    assert load_rgb(grey).shape == (4, 5, 3)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg cannot be read as an image.*data.on_bad_image=skip"):
        load_rgb(bad)
    with pytest.raises(DataError, match="does not exist"):
        load_rgb(tmp_path / "gone.jpg")
