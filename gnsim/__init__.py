"""gnsim: learned particle simulation after "Learning to Simulate Complex Physics with Graph Networks"."""

import importlib

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

# The model and the neighbour search load on first use: the simulators need only the dataset
# format, and importing torch_geometric costs them seconds.
_LAZY = {"LearnedSimulator": "gnsim.learned_simulator", "SimulatorConfig": "gnsim.learned_simulator",
         "radius_graph": "gnsim.neighbors"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gnsim' has no attribute {name!r}")


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
