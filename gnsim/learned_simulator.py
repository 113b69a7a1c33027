"""The learned simulator: particle features in, graph network in the middle, positions out.

GNS paper section 2 and learning_to_simulate's `learned_simulator.py`:
- nodes: the last C-1 velocities (normalised), the distances to each wall divided by the
  connectivity radius R and clipped to [-1, 1] (with `wall_feature_range`, also divided by that
  range and clipped), a learned particle-type embedding, and optional per-particle material
  parameters (as geoelements/gns feeds the sand friction angle);
- edges: the sender-minus-receiver displacement / R and its norm, on the radius-R graph of the
  most recent positions;
- output: a normalised acceleration, integrated by semi-implicit Euler with dt = 1 frame
  (with `hard_walls`, the new positions are then clamped into the box).
Position sequences are particle-major, [N, C, D], so graphs of a batch concatenate along N.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from gnsim.conserving_decoder import ConservativeDecoder
from gnsim.domain import KINEMATIC_PARTICLE, Domain, minimum_image, wrap
from gnsim.graph_network import EncodeProcessDecode
from gnsim.neighbors import Connectivity
from gnsim.normalization import Normalizer

NUM_PARTICLE_TYPES = 9  # type ids 0..8, as learning_to_simulate


@dataclass
class SimulatorConfig:
    """Hyperparameters of the learned simulator; defaults are the published GNS recipe."""

    latent_size: int = 128
    mlp_hidden_size: int = 128
    mlp_num_hidden_layers: int = 2
    message_passing_steps: int = 10
    shared_weights: bool = False
    aggregation: str = "sum"
    layer_norm: bool = True
    input_frames: int = 6  # positions in; input_frames - 1 velocities
    noise_std: float = 6.7e-4  # enters the normalisation, see normalization.py
    connectivity_radius: float | None = None  # None: the dataset's default_connectivity_radius
    particle_type_embedding_size: int = 16
    num_particle_types: int = NUM_PARTICLE_TYPES
    material_features: int = 0  # per-particle material parameters appended to the node features
    material_key: str = "material"  # the per-trajectory extra that holds them
    # True: each predicted position is clamped into the domain's bounds (non-periodic axes), as
    # the simulator's walls keep every particle inside. False (the paper): walls are only learned.
    hard_walls: bool = False
    # Metres within which walls are also seen on a second, coarser scale (distance / this,
    # clipped to [-1, 1]) beside the paper's clip at R; None: only the paper's.
    wall_feature_range: float | None = None
    # True: the decoder conserves momentum (conserving_decoder.ConservativeDecoder): accelerations are
    # gravity (from the metadata, else a learned constant), antisymmetric pair terms between
    # neighbours and wall terms gated to zero beyond R from each wall, so water cannot brake or
    # lift itself in mid-air.
    # False (the paper): an MLP per particle.
    conserve_momentum: bool = False
    # True (the paper, learning_to_simulate's connectivity_utils and geoelements/gns): every
    # particle also has an edge to itself, so each node receives at least one message.
    self_edges: bool = True

    @classmethod
    def from_dict(cls, values: dict) -> SimulatorConfig:
        """The config from a dict holding (at least) its fields; other keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)


class LearnedSimulator(nn.Module):
    """GNS: predicts next positions [N, D] from position sequences [N, C, D]."""

    def __init__(self, config: SimulatorConfig, metadata: dict):
        super().__init__()
        self.config = config
        dim = int(metadata["dim"])
        self.dim = dim
        self.connectivity_radius = float(
            config.connectivity_radius or metadata["default_connectivity_radius"]
        )
        if config.wall_feature_range is not None and config.wall_feature_range <= 0:
            raise ValueError(f"wall_feature_range must be > 0 m, got {config.wall_feature_range}")
        # The lengths the wall distances are divided by (then clipped): R, and the optional range.
        self.wall_scales = [self.connectivity_radius] + (
            [config.wall_feature_range] if config.wall_feature_range else []
        )
        domain = Domain.from_metadata(metadata)
        self.bounds = domain.bounds.tolist()
        self.periodic = domain.periodic.tolist()
        # Not saved: a trained model takes the bounds of the dataset it rolls out on.
        self.register_buffer("boundaries", torch.tensor(self.bounds, dtype=torch.float32), persistent=False)
        self.register_buffer("periodic_axes", torch.tensor(self.periodic), persistent=False)
        self.register_buffer("walls", torch.tensor(domain.walls, dtype=torch.float32), persistent=False)
        self.graph = Connectivity(self.connectivity_radius, self.bounds, self.periodic, config.self_edges)
        self.velocity_normalizer = Normalizer(
            metadata["vel_mean"], metadata["vel_std"], config.noise_std
        )
        self.acceleration_normalizer = Normalizer(
            metadata["acc_mean"], metadata["acc_std"], config.noise_std
        )
        self.particle_type_embedding = (
            nn.Embedding(config.num_particle_types, config.particle_type_embedding_size)
            if config.num_particle_types > 1
            else None
        )
        node_input_size = (
            (config.input_frames - 1) * dim
            + 2 * dim * len(self.wall_scales)
            + config.material_features
            + (
                config.particle_type_embedding_size
                if self.particle_type_embedding is not None
                else 0
            )
        )
        decoder = None  # the paper's: an MLP per particle
        if config.conserve_momentum:  # one gate per wall: lower and upper on each axis
            decoder = ConservativeDecoder(config.latent_size, config.mlp_hidden_size,
                                          config.mlp_num_hidden_layers, dim, num_gates=2 * dim,
                                          constant=self.gravity(domain))
        self.graph_network = EncodeProcessDecode(
            node_input_size=node_input_size,
            edge_input_size=dim + 1,
            output_size=dim,
            latent_size=config.latent_size,
            mlp_hidden_size=config.mlp_hidden_size,
            mlp_num_hidden_layers=config.mlp_num_hidden_layers,
            message_passing_steps=config.message_passing_steps,
            shared_weights=config.shared_weights,
            aggregation=config.aggregation,
            layer_norm=config.layer_norm,
            decoder=decoder,
        )

    def gravity(self, domain: Domain) -> torch.Tensor | None:
        """Gravity as a normalised acceleration per frame, g dt^2, when the metadata gives it.

        The conserving decoder then takes it as its constant: blocks away from walls fall with
        exactly g. Learned instead, the constant took many steps to get there (0.21 g at step 2000
        of the `quick` run), as water resting in deep pools pulls it towards 0.
        """
        gravity = domain.gravity_per_frame()  # on the CPU, also when the model is counted on meta
        return None if gravity is None else self.acceleration_normalizer(torch.as_tensor(gravity, device="cpu").float())

    # -- geometry ----------------------------------------------------------------------------

    def displacement(self, to: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        """`to - origin`, minimum-image on periodic axes."""
        if any(self.periodic):
            return minimum_image(to - origin, self.boundaries[:, 1] - self.boundaries[:, 0], self.periodic_axes)
        return to - origin

    def connectivity(
        self, position: torch.Tensor, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Edges [2, E] (sender, receiver) between particles of the same graph within R."""
        return self.graph(position, batch)

    # -- features ----------------------------------------------------------------------------

    def features(
        self,
        position_sequence: torch.Tensor,
        particle_type: torch.Tensor,
        edge_index: torch.Tensor,
        material: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Node features [N, F_v], edge features [E, D + 1] and wall gates [N, 2D].

        A wall gate is a particle's closeness to one wall, 1 - distance / R clipped to [0, 1]: the
        conservative decoder's wall terms act only within R of a wall.
        """
        if position_sequence.shape[1] != self.config.input_frames:
            raise ValueError(
                f"expected {self.config.input_frames} input positions, got {position_sequence.shape[1]}"
            )
        most_recent_position = position_sequence[:, -1]
        velocity_sequence = self.displacement(position_sequence[:, 1:], position_sequence[:, :-1])
        node_features = [self.velocity_normalizer(velocity_sequence).flatten(1)]

        # Distances to the lower and upper walls, / each scale, clipped: only walls within R (and
        # within wall_feature_range, when set) are seen.
        distance_to_lower = most_recent_position - self.boundaries[:, 0]
        distance_to_upper = self.boundaries[:, 1] - most_recent_position
        distance_to_walls = torch.cat([distance_to_lower, distance_to_upper], dim=-1)
        distance_to_boundaries = torch.cat(
            [(distance_to_walls / scale).clamp(-1.0, 1.0) for scale in self.wall_scales], dim=-1
        )
        if any(self.periodic):  # a periodic axis has no walls: every particle is "far" from them
            distance_to_boundaries = distance_to_boundaries.masked_fill(
                self.periodic_axes.repeat(2 * len(self.wall_scales)), 1.0
            )
        node_features.append(distance_to_boundaries)
        # From the distances / R (the first scale), where a periodic axis already reads "far".
        wall_gate = 1.0 - distance_to_boundaries[:, : 2 * self.dim].clamp(min=0.0)

        if self.particle_type_embedding is not None:
            node_features.append(self.particle_type_embedding(particle_type))
        if self.config.material_features:
            if material is None:
                raise ValueError(
                    f"the model expects {self.config.material_features} material features per particle, got none"
                )
            node_features.append(
                material.reshape(len(particle_type), -1).to(most_recent_position.dtype)
            )

        sender, receiver = edge_index
        relative_displacement = self.displacement(
            most_recent_position[sender], most_recent_position[receiver]
        )
        relative_displacement = relative_displacement / self.connectivity_radius
        relative_distance = relative_displacement.norm(dim=-1, keepdim=True)
        edge_features = torch.cat([relative_displacement, relative_distance], dim=-1)
        return torch.cat(node_features, dim=-1), edge_features, wall_gate

    # -- model -------------------------------------------------------------------------------

    def forward(
        self,
        position_sequence: torch.Tensor,
        particle_type: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        batch: torch.Tensor | None = None,
        material: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Normalised acceleration [N, D]; the graph is built here unless `edge_index` is given."""
        if edge_index is None:
            edge_index = self.connectivity(position_sequence[:, -1], batch)
        node_features, edge_features, wall_gate = self.features(
            position_sequence, particle_type, edge_index, material
        )
        return self.graph_network(node_features, edge_features, edge_index, wall_gate)

    def integrate(
        self, normalized_acceleration: torch.Tensor, position_sequence: torch.Tensor
    ) -> torch.Tensor:
        """Next positions by semi-implicit Euler, dt = 1 frame: v' = v + a, x' = x + v'."""
        acceleration = self.acceleration_normalizer.inverse(normalized_acceleration.float())
        most_recent_position = position_sequence[:, -1]
        velocity = self.displacement(most_recent_position, position_sequence[:, -2])
        next_position = most_recent_position + velocity + acceleration
        if any(self.periodic):
            lower, upper = self.boundaries[:, 0], self.boundaries[:, 1]
            next_position = wrap(next_position, lower, upper - lower, self.periodic_axes)
        if self.config.hard_walls:
            next_position = torch.clamp(next_position, self.walls[:, 0], self.walls[:, 1])
        return next_position

    def normalized_acceleration_target(
        self, next_position: torch.Tensor, position_sequence: torch.Tensor
    ) -> torch.Tensor:
        """The inverse of `integrate`: the normalised acceleration that reaches `next_position`."""
        most_recent_position = position_sequence[:, -1]
        velocity = self.displacement(most_recent_position, position_sequence[:, -2])
        next_velocity = self.displacement(next_position, most_recent_position)
        return self.acceleration_normalizer(next_velocity - velocity)

    def predict_position(
        self,
        position_sequence: torch.Tensor,
        particle_type: torch.Tensor,
        edge_index: torch.Tensor | None = None,
        batch: torch.Tensor | None = None,
        material: torch.Tensor | None = None,
        kinematic_position: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next positions [N, D]; kinematic particles take `kinematic_position` when given."""
        normalized_acceleration = self(
            position_sequence, particle_type, edge_index, batch, material
        )
        next_position = self.integrate(normalized_acceleration, position_sequence)
        if kinematic_position is not None:
            kinematic = (particle_type == KINEMATIC_PARTICLE)[:, None]
            next_position = torch.where(kinematic, kinematic_position, next_position)
        return next_position


def non_kinematic_mask(particle_type: torch.Tensor) -> torch.Tensor:
    """True for the particles the model predicts (and the loss counts)."""
    return particle_type != KINEMATIC_PARTICLE


def material_per_particle(sample: dict, config: SimulatorConfig) -> torch.Tensor | None:
    """The sample's material parameters as the model reads them, [N, material_features] (a
    per-trajectory [material_features] is broadcast); None when the model reads none."""
    features, key = config.material_features, config.material_key
    if not features:
        return None
    if key not in sample:
        raise ValueError(f"the model expects material parameters but the trajectory has no {key!r} field")
    material = torch.as_tensor(sample[key], dtype=torch.float32)
    num_particles = len(sample["particle_type"])
    if material.numel() == features:
        return material.reshape(1, features).expand(num_particles, features).contiguous()
    if material.numel() == num_particles * features:
        return material.reshape(num_particles, features)
    raise ValueError(f"field {key!r} has shape {list(material.shape)}; expected [{features}] or [N, {features}]")
