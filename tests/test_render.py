"""viz.render draws real frames off-screen: right count and size, type colours present, motion visible."""

import numpy as np
import pytest
from PIL import Image

from gnsim import DatasetWriter
from gnsim.baselines import constant_velocity_rollout
from viz.render import BLOW_UP_COLOR, TYPE_COLORS, contact_sheet_frames, main

FRAMES, DT, GRAVITY = 16, 0.02, 9.81
PANEL = 96


def falling_block(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A 4^dim block of water and sand falling under gravity onto a floor of boundary particles."""
    side = np.linspace(0.4, 0.6, 4)
    block = np.stack(np.meshgrid(*[side] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    time = np.arange(FRAMES)[:, None] * DT
    position = np.repeat(block[None], FRAMES, axis=0)
    # free fall y(t) = y0 - g t^2 / 2, stopped by the floor at y = 0.05
    position[..., 1] = np.maximum(block[:, 1] - 0.5 * GRAVITY * time**2, 0.05 + block[:, 1] - 0.4)
    floor = np.linspace(0.05, 0.95, 8)
    grid = [floor, [0.02]] + ([floor] if dim == 3 else [])
    boundary = np.stack(np.meshgrid(*grid, indexing="ij"), axis=-1).reshape(-1, dim)
    position = np.concatenate([position, np.repeat(boundary[None], FRAMES, axis=0)], axis=1)
    half = len(block) // 2
    particle_type = np.array([5] * half + [6] * (len(block) - half) + [3] * len(boundary))
    return position.astype(np.float32), particle_type


def write_rollout(folder, dim: int, blow_up_frame: int | None = None):
    """A rollout file as training.rollout writes it: the constant-velocity baseline as `position`
    (held at the frame before `blow_up_frame` from there on, as a blown-up rollout is stored)."""
    truth, particle_type = falling_block(dim)
    prediction = constant_velocity_rollout(truth, particle_type)
    extras = {}
    if blow_up_frame is not None:
        prediction[blow_up_frame:] = prediction[blow_up_frame - 1]
        extras["blow_up_frame"] = np.int64(blow_up_frame)
    zeros = [0.0] * dim
    with DatasetWriter(
        folder,
        dim=dim,
        dt=DT,
        bounds=[[0.0, 1.0]] * dim,
        connectivity_radius=0.1,
        metadata={
            "vel_mean": zeros,
            "vel_std": [1.0] * dim,
            "acc_mean": zeros,
            "acc_std": [1.0] * dim,
        },
    ) as writer:
        writer.add("test", prediction, particle_type, ground_truth=truth, **extras)
    return folder / "test.h5"


def gif_frames(path) -> list[np.ndarray]:
    image = Image.open(path)
    frames = []
    for k in range(image.n_frames):
        image.seek(k)
        frames.append(np.asarray(image.convert("RGB")))
    return frames


def has_colour(image: np.ndarray, rgb, tolerance: int = 12) -> bool:
    return bool((np.abs(image.astype(int) - rgb).max(axis=-1) <= tolerance).sum() >= 4)


@pytest.fixture(scope="module")
def rollout_2d(tmp_path_factory):
    return write_rollout(tmp_path_factory.mktemp("rollout2d"), dim=2)


def test_gif_of_a_2d_rollout_has_every_strided_frame_side_by_side(rollout_2d, tmp_path):
    out = tmp_path / "rollout.gif"
    assert main([str(rollout_2d), "--out", str(out), "--stride", "2", "--size", str(PANEL)]) == 0
    frames = gif_frames(out)
    assert len(frames) == FRAMES // 2  # frames 0, 2, ..., 14
    assert frames[0].shape == (PANEL, 2 * PANEL, 3)  # ground truth | prediction
    for frame in (frames[0], frames[-1]):
        for particle_type in (5, 6):  # water and sand drawn in their colours, in both panels
            assert has_colour(frame[:, :PANEL], TYPE_COLORS[particle_type])
            assert has_colour(frame[:, PANEL:], TYPE_COLORS[particle_type])
    # the block falls: frames change over time, and the prediction drifts from the truth
    assert np.abs(frames[-1].astype(int) - frames[0]).sum() > 0
    assert not np.array_equal(frames[-1][:, :PANEL], frames[-1][:, PANEL:])


def test_mp4_holds_every_frame_padded_to_even_sides(rollout_2d, tmp_path):
    import imageio.v2 as imageio

    out = tmp_path / "rollout.mp4"
    assert main([str(rollout_2d), "--out", str(out), "--size", "65", "--fps", "10"]) == 0
    reader = imageio.get_reader(out)
    assert reader.count_frames() == FRAMES
    assert reader.get_meta_data()["size"] == (130, 66)  # width, height: 65 padded to 66
    assert reader.get_meta_data()["fps"] == 10
    reader.close()


def test_png_contact_sheet_stacks_evenly_spaced_frames(rollout_2d, tmp_path):
    out = tmp_path / "sheet.png"
    assert main([str(rollout_2d), "--out", str(out), "--frames", "3", "--size", str(PANEL)]) == 0
    assert contact_sheet_frames(FRAMES, 3) == [0, 8, 15]
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (3 * PANEL, 2 * PANEL, 3)
    rows = [sheet[k * PANEL : (k + 1) * PANEL] for k in range(3)]
    assert has_colour(rows[0], TYPE_COLORS[5]) and has_colour(rows[2], TYPE_COLORS[6])
    assert not np.array_equal(rows[0], rows[2])


def test_color_by_error_replaces_type_colours_in_the_prediction_only(rollout_2d, tmp_path):
    out = tmp_path / "error.png"
    assert (
        main(
            [
                str(rollout_2d),
                "--out",
                str(out),
                "--frames",
                "1",
                "--size",
                str(PANEL),
                "--color-by-error",
            ]
        )
        == 0
    )
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert has_colour(sheet[:, :PANEL], TYPE_COLORS[5])
    assert not has_colour(sheet[:, PANEL:], TYPE_COLORS[5])


def test_a_3d_rollout_renders_off_screen_with_a_moving_camera(tmp_path):
    path = write_rollout(tmp_path / "rollout3d", dim=3)
    out = tmp_path / "rollout3d.gif"
    assert main([str(path), "--out", str(out), "--stride", "5", "--size", str(PANEL)]) == 0
    frames = gif_frames(out)
    assert len(frames) == 4 and frames[0].shape == (PANEL, 2 * PANEL, 3)
    # shaded spheres: look for the types' hues (water blue over red, sand red over blue), not exact colours
    red, blue = frames[0][..., 0].astype(int), frames[0][..., 2].astype(int)
    assert (blue - red > 80).sum() > 10 and (red - blue > 80).sum() > 10
    assert np.abs(frames[-1].astype(int) - frames[0]).sum() > 0


def test_a_dataset_file_renders_one_panel(tmp_path):
    truth, particle_type = falling_block(2)
    with DatasetWriter(
        tmp_path / "data", dim=2, dt=DT, bounds=[[0.0, 1.0]] * 2, connectivity_radius=0.1
    ) as writer:
        writer.add("train", truth, particle_type)
    out = tmp_path / "train.png"
    assert (
        main(
            [
                str(tmp_path / "data" / "train.h5"),
                "--out",
                str(out),
                "--frames",
                "2",
                "--size",
                str(PANEL),
            ]
        )
        == 0
    )
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (PANEL, 2 * PANEL, 3)  # two frames in one row
    assert has_colour(sheet, TYPE_COLORS[6])


def test_stripes_tint_every_other_band_of_the_first_frame_in_both_panels(rollout_2d, tmp_path):
    out = tmp_path / "stripes.png"
    assert main([str(rollout_2d), "--out", str(out), "--frames", "1", "--size", str(PANEL), "--stripes"]) == 0
    sheet = np.asarray(Image.open(out).convert("RGB"))
    light_water = 255 - 0.45 * (255 - np.array(TYPE_COLORS[5]))
    for panel in (sheet[:, :PANEL], sheet[:, PANEL:]):
        # the water's columns (x = 0.4, 0.47) lie in band 3 of 8, tinted; the sand's (0.53, 0.6) in band 4
        assert has_colour(panel, light_water.round()) and not has_colour(panel, TYPE_COLORS[5])
        assert has_colour(panel, TYPE_COLORS[6])


def test_frames_after_a_blow_up_are_marked_not_drawn_frozen(tmp_path):
    path = write_rollout(tmp_path, dim=2, blow_up_frame=8)
    out, size = tmp_path / "blown.gif", 2 * PANEL  # the label's red survives the GIF palette at this size
    assert main([str(path), "--out", str(out), "--size", str(size)]) == 0
    frames = gif_frames(out)
    assert len(frames) == FRAMES
    prediction = [frame[:, size:] for frame in frames]  # the right-hand panel
    truth = [frame[:, :size] for frame in frames]
    for t in (0, 7):
        assert has_colour(prediction[t], TYPE_COLORS[5]) and not has_colour(prediction[t], BLOW_UP_COLOR, 40)
    for t in (8, FRAMES - 1):
        assert has_colour(prediction[t], BLOW_UP_COLOR, 40) and not has_colour(prediction[t], TYPE_COLORS[5])
        assert has_colour(truth[t], TYPE_COLORS[5])  # the ground truth goes on being drawn


def test_bad_input_is_a_one_line_error(rollout_2d, tmp_path, capsys):
    assert main([str(tmp_path / "missing.h5")]) == 2
    assert main([str(rollout_2d), "--trajectory", "3"]) == 2
    assert main([str(rollout_2d), "--out", str(tmp_path / "x.avi")]) == 2
    truth, particle_type = falling_block(2)
    with DatasetWriter(
        tmp_path / "data", dim=2, dt=DT, bounds=[[0.0, 1.0]] * 2, connectivity_radius=0.1
    ) as writer:
        writer.add("train", truth, particle_type)
    assert main([str(tmp_path / "data" / "train.h5"), "--color-by-error"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors)
    assert "needs a rollout file" in errors[3]
    assert "no trajectory 3" in errors[1]
    assert "missing.h5: no such file" in errors[0]


def test_offscreen_names_a_headless_window_only_when_no_display_is_set(monkeypatch):
    from viz import offscreen

    monkeypatch.delenv("VTK_DEFAULT_OPENGL_WINDOW", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    assert offscreen.configure_offscreen() is None  # a display: VTK's own choice (X) stands
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    window = offscreen.configure_offscreen()
    assert window in ("vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow")
    assert offscreen.os.environ["VTK_DEFAULT_OPENGL_WINDOW"] == window
    monkeypatch.delenv("VTK_DEFAULT_OPENGL_WINDOW")
    monkeypatch.setattr(offscreen.ctypes.util, "find_library", lambda name: None)  # a bare machine
    with pytest.raises(RuntimeError, match="apt-get install libegl1 libegl-mesa0"):
        offscreen.configure_offscreen()


def test_interactive_without_a_display_is_a_one_line_error(rollout_2d, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main([str(rollout_2d), "--interactive"]) == 2
    assert capsys.readouterr().err.startswith("error: --interactive needs a display")
