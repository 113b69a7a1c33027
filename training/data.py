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
from gnsim.learned_simulator import connectivity
from gnsim.strategies import add_training_noise


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
    `particle_type` [N], `edge_index` [2, E] (radius graph of the noisy last input positions,
    built here so that DataLoader workers do it beside the training step), `material` [N, P], and
    for windows with extra frames `truth` [N, K + 1, D], the clean frames from the target on.
    """

    def __init__(
        self,
        windows: WindowDataset,
        metadata: dict,
        *,
        connectivity_radius: float,
        self_edges: bool = True,
        noise_std: float = 0.0,
        seed: int = 0,
        material_key: str | None = None,
        material_features: int = 0,
        correct_position_noise: bool = False,
        velocity_correction: float = 1.0,
    ):
        self.windows, self.noise_std, self.seed = windows, noise_std, seed
        self.correct_position_noise = correct_position_noise
        self.velocity_correction = velocity_correction
        self.connectivity_radius, self.self_edges = connectivity_radius, self_edges
        self.bounds = metadata["bounds"]
        self.periodic = metadata.get("periodic_boundary_conditions")
        self.material_key, self.material_features = material_key, material_features

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: tuple[int, int]) -> Data:
        index, stream_position = key
        sample = self.windows[index]
        sequence = sample["position"].transpose(0, 1)  # [N, C + 1 + K, D], particle-major
        inputs = self.windows.input_frames
        position, target = sequence[:, :inputs], sequence[:, inputs]
        particle_type = sample["particle_type"]
        if self.noise_std > 0:
            generator = seeded_generator(
                self.seed, 1 << 20, stream_position
            )  # a stream apart from the shuffles'
            position, target = add_training_noise(
                position,
                target,
                particle_type,
                self.noise_std,
                generator,
                correct_position=self.correct_position_noise,
                velocity_correction=self.velocity_correction,
            )
        edge_index = connectivity(
            position[:, -1], self.connectivity_radius, bounds=self.bounds, periodic=self.periodic,
            self_edges=self.self_edges,
        )
        graph = Data(
            position=position,
            target=target,
            particle_type=particle_type,
            edge_index=edge_index,
            num_nodes=len(particle_type),
        )
        if sequence.shape[1] > inputs + 1:  # pushforward: the true frames from the target on
            graph.truth = sequence[:, inputs:]
        if self.material_features:
            graph.material = material_per_particle(
                sample, self.material_key, self.material_features, len(particle_type)
            )
        return graph


def material_per_particle(
    sample: dict, key: str, features: int, num_particles: int
) -> torch.Tensor:
    """The sample's material parameters as [N, features]: a per-trajectory [features] is broadcast."""
    if key not in sample:
        raise ValueError(
            f"the model expects material parameters but the trajectory has no {key!r} field"
        )
    material = torch.as_tensor(sample[key], dtype=torch.float32)
    if material.numel() == features:
        return material.reshape(1, features).expand(num_particles, features).contiguous()
    if material.numel() == num_particles * features:
        return material.reshape(num_particles, features)
    raise ValueError(
        f"field {key!r} has shape {list(material.shape)}; expected [{features}] or [N, {features}]"
    )


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
