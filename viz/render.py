"""Render a rollout (ground truth beside prediction) or a dataset trajectory to GIF, MP4 or a PNG contact sheet.

python -m viz.render runs/water/rollouts/test/test.h5 --trajectory 0 --out rollout_0.gif
python -m viz.render datasets/water/train.h5 --trajectory 3 --out sheet.png

Off-screen by default (pyvista/VTK with EGL or OSMesa, see viz.offscreen); `--interactive` opens
a window with a time slider instead. Particles are coloured by type; boundary particles faintly.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from tqdm import tqdm

from gnsim.atomic import replacing
from gnsim.baselines import gravity_per_frame
from gnsim.dataset import KINEMATIC_PARTICLE, DatasetError, TrajectoryFile, read_metadata
from gnsim.limits import too_big
from viz.offscreen import configure_offscreen, has_display
from viz.points import as_3d

# RGB per particle type id (GNS ids: 0 rigid, 3 boundary, 5 water, 6 sand, 7 goop).
TYPE_COLORS = {
    0: (90, 90, 100),  # rigid: slate
    3: (150, 150, 150),  # boundary: grey, drawn faintly
    5: (30, 120, 220),  # water: blue
    6: (220, 160, 60),  # sand: ochre
    7: (170, 60, 170),  # goop: purple
}
BOUNDARY_OPACITY = 0.25
BLOW_UP_COLOR = (220, 20, 20)  # the "blown up" label: red, unlike every particle type
BACKGROUND = (255, 255, 255)
STRIPES = 8  # bands across the domain for --stripes
ANIMATION_SUFFIXES = (".gif", ".mp4")


@dataclass
class RenderScene:
    """What to draw: positions per panel ([T, N, D] each), particle types and the metadata."""

    panels: dict[str, np.ndarray]  # title -> positions; "ground truth" first for a rollout
    particle_type: np.ndarray
    metadata: dict
    # First non-finite frame of a blown-up rollout; training.rollout holds the prediction frozen from there.
    blow_up_frame: int | None = None

    @property
    def frames(self) -> int:
        return len(next(iter(self.panels.values())))

    @property
    def is_rollout(self) -> bool:
        return "prediction" in self.panels


def load_render_scene(path: str | os.PathLike, trajectory: int = 0) -> RenderScene:
    """Read trajectory `trajectory` of a rollout file (with `ground_truth`) or of a dataset file."""
    path = Path(path)
    if not path.is_file():  # before the metadata.json beside it, so the error names the file asked for
        raise DatasetError(f"{path}: no such file")
    file = TrajectoryFile(path, read_metadata(path.parent), min_frames=1)
    if not 0 <= trajectory < len(file):
        raise DatasetError(f"{path}: no trajectory {trajectory} (it holds {len(file)})")
    data = file[trajectory]
    if "ground_truth" in data.extras:
        truth = np.asarray(data.extras["ground_truth"], dtype=np.float32)
        if truth.shape != data.position.shape:
            raise DatasetError(f"{path} trajectory {file.names[trajectory]}: 'ground_truth' has shape "
                               f"{truth.shape} but 'position' has {data.position.shape}")
        panels = {"ground truth": truth, "prediction": data.position}
    else:
        panels = {"simulation": data.position}
    blow_up = data.extras.get("blow_up_frame")
    return RenderScene(panels, data.particle_type, file.metadata, None if blow_up is None else int(blow_up))


def particle_spacing(position: np.ndarray) -> float:
    """Median distance to the nearest other particle: the size a particle should be drawn."""
    if len(position) < 2:
        return 0.01
    distance, _ = cKDTree(position).query(position, k=2)
    return float(np.median(distance[:, 1])) or 0.01


class Renderer:
    """One pyvista plotter with a panel per entry of `scene.panels`; `image(t)` draws frame t."""

    def __init__(self, scene: RenderScene, panel_size: int = 480, color_by_error: bool = False,
                 off_screen: bool = True, orbit_frames: int | None = None, stripes: bool = False):
        if off_screen:
            configure_offscreen()
        import pyvista as pv

        self.scene = scene
        self.dim = int(scene.metadata["dim"])
        self.bounds = np.asarray(scene.metadata["bounds"], dtype=np.float64)
        self.extent = float(np.max(self.bounds[:, 1] - self.bounds[:, 0]))
        self.vertical = vertical_axis(scene.metadata)
        self.orbit_frames = orbit_frames or scene.frames
        kinematic = scene.particle_type == KINEMATIC_PARTICLE
        self.groups = {"moving": ~kinematic, "boundary": kinematic}
        self.error_scale = self._error_scale() if color_by_error and scene.is_rollout else None
        self.stripes = stripes

        self.plotter = pv.Plotter(off_screen=off_screen, shape=(1, len(scene.panels)), border=False,
                                  window_size=(panel_size * len(scene.panels), panel_size))
        self.plotter.set_background([c / 255 for c in BACKGROUND])
        first = next(iter(scene.panels.values()))[0]
        # Draw each particle about one spacing wide, so that a fluid reads as a continuum.
        pixels_per_metre = panel_size / (1.1 * self.extent) * (0.6 if self.dim == 3 else 1.0)
        shown = first[~kinematic] if (~kinematic).any() else first
        point_size = float(np.clip(particle_spacing(shown) * pixels_per_metre, 2.0, 30.0))
        self.meshes: dict[tuple[str, str], object] = {}
        self.actors: dict[tuple[str, str], object] = {}
        self.labels = {}
        self.blow_up_label = None
        for column, title in enumerate(scene.panels):
            self.plotter.subplot(0, column)
            self._add_panel(pv, title, point_size, font=panel_size / 480)
        self.plotter.link_views()
        self._place_camera(0)

    def _error_scale(self) -> float:
        """Top of the error colour scale: the 99th percentile of the distance to the truth."""
        moving = self.groups["moving"]
        error = np.linalg.norm(self.scene.panels["prediction"] - self.scene.panels["ground truth"], axis=-1)
        return max(float(np.percentile(error[:, moving], 99)) if moving.any() else 0.0, 1e-9)

    def _add_panel(self, pv, title: str, point_size: float, font: float) -> None:
        """The particle groups of one panel, the domain box, its title and its time label."""
        positions = self.scene.panels[title]
        for group, mask in self.groups.items():
            if not mask.any():
                continue
            mesh = pv.PolyData(as_3d(positions[0][mask]))
            by_error = self.error_scale is not None and title == "prediction" and group == "moving"
            if by_error:
                mesh.point_data["error"] = np.zeros(int(mask.sum()), dtype=np.float32)
                bar = {"title": "error (m)", "color": "black", "n_labels": 3, "fmt": "%.2g", "vertical": True,
                       "position_x": 0.86, "position_y": 0.2, "width": 0.06, "height": 0.6}
                style = {"scalars": "error", "cmap": "viridis", "clim": [0.0, self.error_scale],
                             "scalar_bar_args": bar}
            else:
                types = self.scene.particle_type[mask]
                colors = np.array([TYPE_COLORS[int(k)] for k in types], dtype=np.uint8)
                if self.stripes and group == "moving":
                    first_frame = next(iter(self.scene.panels.values()))[0][mask]  # the same in every panel
                    colors = striped(colors, first_frame[:, 0], self.bounds[0])
                mesh.point_data["color"] = colors
                style = {"scalars": "color", "rgb": True}
            boundary = group == "boundary"
            self.actors[title, group] = self.plotter.add_mesh(mesh, render_points_as_spheres=True,
                                  point_size=point_size * (0.6 if boundary else 1.0),
                                  opacity=BOUNDARY_OPACITY if boundary else 1.0,
                                  lighting=self.dim == 3, show_scalar_bar=by_error, **style)
            self.meshes[title, group] = mesh
        self.plotter.add_mesh(pv.Box(_box_bounds(self.bounds)), style="wireframe", color="black",
                              line_width=1, lighting=False)
        # Font sizes scale with the panel, so text keeps its share of the picture at any --size.
        self.plotter.add_text(title, position="upper_edge", font_size=max(int(12 * font), 7), color="black")
        self.labels[title] = self.plotter.add_text("", position="lower_left",
                                                   font_size=max(int(10 * font), 6), color="black")
        if title == "prediction" and self.scene.blow_up_frame is not None:
            self.blow_up_label = self.plotter.add_text("", position="left_edge", font_size=max(int(11 * font), 7),
                                                       color=[c / 255 for c in BLOW_UP_COLOR])

    def _place_camera(self, t: int) -> None:
        """2D: the domain from +z, orthographic. 3D: one orbit about the vertical axis per animation."""
        center = self.bounds.mean(axis=1)
        camera = self.plotter.camera
        if self.dim == 2:
            camera.parallel_projection = True
            camera.focal_point = (*center, 0.0)
            camera.position = (*center, self.extent * 3)
            camera.up = (0.0, 1.0, 0.0)
            camera.parallel_scale = 0.6 * self.extent
            return
        angle = 2 * np.pi * t / max(self.orbit_frames, 1)
        # In the plane across the vertical axis: (a, b) the other two axes, right-handed.
        up, a, b = self.vertical, (self.vertical + 1) % 3, (self.vertical + 2) % 3
        offset = np.zeros(3)
        offset[a], offset[b], offset[up] = 3.0 * np.sin(angle), 3.0 * np.cos(angle), 1.3
        camera.focal_point = tuple(center)
        camera.position = tuple(center + self.extent * offset)
        camera.up = tuple(np.eye(3)[up])

    def update(self, t: int, orbit: bool = True) -> None:
        """Move every panel's particles (and the 3D camera) to frame t."""
        seconds = t * float(self.scene.metadata["dt"])
        for title, positions in self.scene.panels.items():
            for group, mask in self.groups.items():
                if (title, group) not in self.meshes:
                    continue
                mesh = self.meshes[title, group]
                mesh.points = as_3d(positions[t][mask])
                if "error" in mesh.point_data:
                    error = positions[t][mask] - self.scene.panels["ground truth"][t][mask]
                    mesh.point_data["error"] = np.linalg.norm(error, axis=-1).astype(np.float32)
            self.labels[title].SetText(0, f"t = {seconds:.3f} s  (frame {t})")
        if self.blow_up_label is not None:
            # Frozen frames are no prediction: hide the moving particles and say where it blew up.
            blown = t >= self.scene.blow_up_frame
            if ("prediction", "moving") in self.actors:
                self.actors["prediction", "moving"].SetVisibility(not blown)
            self.blow_up_label.SetText(6, f"blown up at frame {self.scene.blow_up_frame}" if blown else "")
        if self.dim == 3 and orbit:  # otherwise the camera stays where it is (the first view, or the user's)
            self._place_camera(t)
        self.plotter.render()

    def image(self, t: int, orbit: bool = True) -> np.ndarray:
        """RGB image [H, W, 3] uint8 of frame t."""
        self.update(t, orbit)
        return np.asarray(self.plotter.screenshot(return_img=True))[..., :3].copy()

    def close(self) -> None:
        self.plotter.close()


def striped(colors: np.ndarray, x: np.ndarray, axis_bounds: np.ndarray, bands: int = STRIPES) -> np.ndarray:
    """Colours [N, 3] with every other band of the first frame's x (`bands` across the domain)
    tinted lighter: a fluid's motion shows where one colour per type reads as a still block."""
    lower, upper = float(axis_bounds[0]), float(axis_bounds[1])
    odd = np.floor((x - lower) / (upper - lower) * bands).astype(int) % 2 == 1
    tinted = colors.astype(np.float64)
    tinted[odd] = 255 - 0.45 * (255 - tinted[odd])
    return tinted.round().astype(np.uint8)


def vertical_axis(metadata: dict) -> int:
    """The axis gravity acts along, when the metadata names gravity; else y (our simulators' and GNS's)."""
    acceleration, source = gravity_per_frame(metadata)
    return int(np.argmax(np.abs(acceleration))) if source == "gravity" and np.any(acceleration) else 1


def _box_bounds(bounds: np.ndarray) -> tuple[float, ...]:
    lo_hi = [tuple(axis) for axis in bounds] + ([(0.0, 0.0)] if len(bounds) == 2 else [])
    return tuple(value for axis in lo_hi for value in axis)


def render_animation(renderer: Renderer, out: Path, fps: float = 20, stride: int = 1) -> int:
    """Write every `stride`-th frame to a GIF or MP4 (by suffix); returns the number of frames written."""
    frames = range(0, renderer.scene.frames, max(stride, 1))
    with replacing(out, out.suffix) as temporary:
        if out.suffix.lower() == ".gif":
            from PIL import Image

            # A 256-colour palette per frame, undithered: exact for flat 2D type colours on white,
            # nearly so for shaded 3D spheres, and far smaller than dithered noise.
            images = [Image.fromarray(renderer.image(t)).quantize(256, dither=Image.Dither.NONE)
                      for t in tqdm(frames, desc="render", unit="frame", disable=None)]
            images[0].save(temporary, save_all=True, append_images=images[1:], loop=0,
                           duration=max(round(1000 / fps), 20), optimize=False)
        else:
            import imageio.v2 as imageio

            # H.264 in yuv420p needs even sides: pad with background rather than let imageio rescale.
            with imageio.get_writer(temporary, format="FFMPEG", fps=fps, codec="libx264", quality=7,
                                    macro_block_size=2) as writer:
                for t in tqdm(frames, desc="render", unit="frame", disable=None):
                    image = renderer.image(t)
                    pad = [(0, image.shape[0] % 2), (0, image.shape[1] % 2), (0, 0)]
                    writer.append_data(np.pad(image, pad, constant_values=255))
    return len(frames)


def contact_sheet_frames(frames: int, count: int = 4) -> list[int]:
    """`count` frames evenly spaced from the first to the last."""
    return sorted(set(np.linspace(0, frames - 1, min(count, frames)).round().astype(int).tolist()))


def render_contact_sheet(renderer: Renderer, out: Path, count: int = 4) -> list[int]:
    """A PNG of a few frames: one row per frame for a rollout (truth | prediction), else one row of frames."""
    from PIL import Image

    frames = contact_sheet_frames(renderer.scene.frames, count)
    images = [renderer.image(t, orbit=False) for t in frames]
    sheet = np.concatenate(images, axis=0 if renderer.scene.is_rollout else 1)
    with replacing(out, out.suffix) as temporary:
        Image.fromarray(sheet).save(temporary, format="PNG")
    return frames


def interactive(scene: RenderScene, color_by_error: bool = False) -> None:
    """A pyvista window with a time slider over the frames."""
    renderer = Renderer(scene, color_by_error=color_by_error, off_screen=False)
    renderer.plotter.subplot(0, 0)
    renderer.plotter.add_slider_widget(lambda value: renderer.update(round(value), orbit=False),
                                       [0, scene.frames - 1], value=0, title="frame", fmt="%.0f",
                                       color="black")
    renderer.update(0, orbit=False)
    renderer.plotter.show()


def default_output(path: Path, trajectory: int, scene: RenderScene) -> Path:
    """rollout_K.gif beside a rollout file; SPLIT_K.gif beside a dataset file."""
    name = "rollout" if scene.is_rollout else path.stem
    return path.parent / f"{name}_{trajectory}.gif"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viz.render", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a rollout .h5 (with ground_truth) or a dataset split .h5")
    parser.add_argument("--trajectory", type=int, default=0, help="trajectory index in the file (default 0)")
    parser.add_argument("--out", type=Path, help="output .gif, .mp4 or .png (default rollout_K.gif beside FILE)")
    parser.add_argument("--fps", type=float, default=20.0, help="animation frames per second (default 20)")
    parser.add_argument("--stride", type=int, default=1, help="draw every STRIDE-th frame (default 1)")
    parser.add_argument("--frames", type=int, default=4, help="frames in a PNG contact sheet (default 4)")
    parser.add_argument("--size", type=int, default=480, help="pixels per panel side (default 480)")
    parser.add_argument("--color-by-error", action="store_true",
                        help="colour predicted particles by their distance to the ground truth")
    parser.add_argument("--stripes", action="store_true",
                        help="tint every other band of the particles' first-frame x lighter, so a flow's motion shows")
    parser.add_argument("--interactive", action="store_true", help="open a window with a time slider")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    if args.fps <= 0 or args.stride < 1 or args.frames < 1 or args.size < 32:
        return fail("--fps must be > 0, --stride and --frames >= 1, --size >= 32")
    try:
        scene = load_render_scene(args.file, args.trajectory)
    except DatasetError as error:
        return fail(str(error))
    if args.color_by_error and not scene.is_rollout:
        return fail(f"{args.file}: --color-by-error needs a rollout file (with 'ground_truth')")
    if args.interactive:
        if not has_display():
            return fail("--interactive needs a display (none is set); render to a file with --out instead")
        interactive(scene, args.color_by_error)
        return 0
    out = args.out or default_output(args.file, args.trajectory, scene)
    if out.suffix.lower() not in (*ANIMATION_SUFFIXES, ".png"):
        return fail(f"{out}: unknown output type {out.suffix!r} (use .gif, .mp4 or .png)")
    if not out.parent.is_dir():
        return fail(f"{out.parent}: no such folder")
    # RGB frames held for the file (a GIF keeps them all) and the RGBA render buffers, per panel.
    held = args.frames if out.suffix.lower() == ".png" else len(range(0, scene.frames, args.stride))
    reason = too_big(len(scene.panels) * args.size**2 * (3 * held + 16))
    if reason:
        return fail(f"--size {args.size}: rendering {held} frames of {len(scene.panels)} panels {reason}")
    try:
        renderer = Renderer(scene, panel_size=args.size, color_by_error=args.color_by_error, stripes=args.stripes)
    except RuntimeError as error:
        return fail(str(error))
    try:
        if out.suffix.lower() == ".png":
            frames = render_contact_sheet(renderer, out, args.frames)
            print(f"wrote {out} (frames {', '.join(map(str, frames))})")
        else:
            count = render_animation(renderer, out, args.fps, args.stride)
            print(f"wrote {out} ({count} frames at {args.fps:g} fps)")
    finally:
        renderer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
