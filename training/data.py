"""The training data pipeline: seeded shuffled windows -> noisy inputs + graph -> PyG batches.

Everything random here is a function of (seed, position in the stream), never of a process's
RNG state: the same sample gets the same noise whether it is read by one process or by a rank
of a DDP run, by worker 0 or worker 3, before or after a resume. That is what makes resume exact
and DDP equal to one process with the same global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from gnsim.dataset import WindowDataset
from gnsim.learned_simulator import SimulatorConfig, material_per_particle
from gnsim.neighbors import Connectivity
from gnsim.strategies import TrainingNoise


def seeded_generator(seed: int, *key: int) -> torch.Generator:
    """A torch generator seeded from `seed` and `key` (numpy's SeedSequence mixes them)."""
    state = np.random.SeedSequence([seed, *key]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


class WindowSampler(torch.utils.data.Sampler):
    """This rank's share of an endless sequence of seeded shuffles; yields (index, stream position).

    Epoch e is a permutation drawn from (seed, e), cut to whole global batches. Global batch b
    takes its `batch_size` entries; rank r takes the r-th contiguous slice of them. Starting at
    `start_step` skips the batches already trained on, without reading them.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        shuffle: bool = True,
    ):
        if batch_size % world_size:
            raise ValueError(
                f"batch_size {batch_size} is not divisible by the {world_size} processes"
            )
        if num_samples < batch_size:
            raise ValueError(
                f"the dataset has {num_samples} samples, fewer than batch_size {batch_size}"
            )
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size, self.start_step, self.shuffle = (
            rank,
            world_size,
            start_step,
            shuffle,
        )
        self.steps_per_epoch = num_samples // batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        per_rank = self.batch_size // self.world_size
        epoch, batch = divmod(self.start_step, self.steps_per_epoch)
        while True:
            order = (
                torch.randperm(self.num_samples, generator=seeded_generator(self.seed, epoch))
                if self.shuffle
                else torch.arange(self.num_samples)
            )
            for b in range(batch, self.steps_per_epoch):
                first = b * self.batch_size + self.rank * per_rank
                for position in range(first, first + per_rank):
                    yield int(order[position]), epoch * self.num_samples + position
            epoch, batch = epoch + 1, 0


class NoisyWindows(torch.utils.data.Dataset):
    """`dataset[(index, stream_position)]` -> a PyG `Data` graph of window `index`, noised.

    Fields: `position` [N, C, D] noisy inputs, `target` [N, D] next position (see `add_training_noise`),
    `particle_type` [N], `edge_index` [2, E] (the model's `graph` of the noisy last input
    positions, built here so that DataLoader workers do it beside the training step), `material`
    [N, P] when the model reads material parameters, and for windows with extra frames `truth`
    [N, K + 1, D], the clean frames from the target on.
    """

    def __init__(self, windows: WindowDataset, model_config: SimulatorConfig, graph: Connectivity,
                 noise: TrainingNoise, seed: int = 0):
        self.windows, self.model_config, self.graph, self.noise, self.seed = (
            windows, model_config, graph, noise, seed)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: tuple[int, int]) -> Data:
        index, stream_position = key
        sample = self.windows[index]
        sequence = sample["position"].transpose(0, 1)  # [N, C + 1 + K, D], particle-major
        inputs = self.windows.input_frames
        position, target = sequence[:, :inputs], sequence[:, inputs]
        particle_type = sample["particle_type"]
        # A stream apart from the shuffles': the same sample gets the same noise anywhere.
        generator = seeded_generator(self.seed, 1 << 20, stream_position)
        position, target = self.noise(position, target, particle_type, generator)
        graph = Data(
            position=position,
            target=target,
            particle_type=particle_type,
            edge_index=self.graph(position[:, -1]),
            num_nodes=len(particle_type),
        )
        material = material_per_particle(sample, self.model_config)
        if material is not None:
            graph.material = material
        if sequence.shape[1] > inputs + 1:  # pushforward: the true frames from the target on
            graph.truth = sequence[:, inputs:]
        return graph


def collate(graphs: list[Data]) -> Batch:
    """Variable-size graphs -> one disjoint graph (PyG offsets the edge indices)."""
    return Batch.from_data_list(graphs)


def make_loader(
    dataset: NoisyWindows, sampler: WindowSampler, num_workers: int
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=sampler.batch_size // sampler.world_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
