"""gnsim: learned particle simulation after "Learning to Simulate Complex Physics with Graph Networks"."""

from gnsim.dataset import (
    INPUT_FRAMES,
    KINEMATIC_PARTICLE,
    PARTICLE_TYPES,
    DatasetError,
    DatasetWriter,
    Trajectory,
    TrajectoryDataset,
    TrajectoryFile,
    WindowDataset,
    read_metadata,
    split_file,
    validate,
)
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig
from gnsim.neighbors import radius_graph

__all__ = [
    "INPUT_FRAMES",
    "KINEMATIC_PARTICLE",
    "PARTICLE_TYPES",
    "DatasetError",
    "DatasetWriter",
    "LearnedSimulator",
    "SimulatorConfig",
    "Trajectory",
    "TrajectoryDataset",
    "TrajectoryFile",
    "WindowDataset",
    "radius_graph",
    "read_metadata",
    "split_file",
    "validate",
]
