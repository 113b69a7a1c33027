"""Classical particle simulators (MLS-MPM in NVIDIA Warp) and the dataset generator."""

from simulators.scene import Scene, SceneError, load_scene, parse_scene
from simulators.simulate import SimulationError, simulate

__all__ = ["Scene", "SceneError", "SimulationError", "load_scene", "parse_scene", "simulate"]
