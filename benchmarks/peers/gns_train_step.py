"""geoelements/gns's own training step on the files `python -m benchmarks.training` writes; one JSON line.

Runs in the environment `benchmarks/peers/gns.sh` builds (gns's source on its path), called as
`python gns_train_step.py --data DIR --steps S --warmup W --device cpu --threads T`. The step is
gns/train.py's: random-walk noise, predict_accelerations (radius graph and forward),
acceleration_loss, backward, Adam, on one batch of gns's own loader (batch 2, 6 input frames).
"""

import argparse
import json
import statistics
import time

import torch
from gns import data_loader, noise_utils, reading_utils
from gns.train import (
    INPUT_SEQUENCE_LENGTH,
    KINEMATIC_PARTICLE_ID,
    _get_simulator,
    acceleration_loss,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    metadata = reading_utils.read_metadata(args.data + "/", "train")
    noise_std = 6.7e-4  # gns' default, the paper's
    torch.manual_seed(0)
    simulator = _get_simulator(metadata, noise_std, noise_std, device)
    optimizer = torch.optim.Adam(simulator.parameters(), lr=1e-4)
    loader = data_loader.get_data_loader_by_samples(f"{args.data}/train.npz", INPUT_SEQUENCE_LENGTH, batch_size=2)
    (position, particle_type, particles_per_example), labels = next(iter(loader))
    position, particle_type, labels = position.to(device), particle_type.to(device), labels.to(device)
    particles_per_example = particles_per_example.to(device)
    non_kinematic = (particle_type != KINEMATIC_PARTICLE_ID).to(device)

    def step() -> None:
        noise = noise_utils.get_random_walk_noise_for_position_sequence(position, noise_std_last_step=noise_std)
        noise = noise.to(device) * non_kinematic.view(-1, 1, 1)
        predicted, target = simulator.predict_accelerations(
            next_positions=labels, position_sequence_noise=noise, position_sequence=position,
            nparticles_per_example=particles_per_example, particle_types=particle_type)
        loss = acceleration_loss(predicted, target, non_kinematic)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print(json.dumps({"seconds_per_step": median, "steps_per_s": 1 / median,
                      "particles_per_step": int(particles_per_example.sum())}))


if __name__ == "__main__":
    main()
