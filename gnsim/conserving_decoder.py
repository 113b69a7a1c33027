"""A decoder head that conserves momentum: what a particle gains from a neighbour, the neighbour loses.

The particle physics' option to the paper's per-particle decoder (`conserve_momentum`): pair terms
antisymmetric over each edge and its reverse, so that water in mid-air cannot brake, hover or lift
itself; wall terms gated to act only near the walls; gravity as a known constant.
"""

from __future__ import annotations

import torch
from torch import nn

from gnsim.graph_network import edge_mlp, mlp


def reverse_edges(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """For each edge j->i of a symmetric graph, the index of its reverse i->j."""
    sender, receiver = edge_index
    key = receiver * num_nodes + sender
    order = torch.argsort(key)
    if not len(key):
        return order  # no edges, none to reverse
    reverse_key = sender * num_nodes + receiver
    reverse = order[torch.searchsorted(key[order], reverse_key).clamp(max=len(key) - 1)]
    if not bool((key[reverse] == reverse_key).all()):
        raise ValueError("conservative decoding needs a symmetric graph: an edge has no reverse")
    return reverse


class ConservativeDecoder(nn.Module):
    """Per-node outputs o_i = b + sum_j (p_ji - p_ij) + sum_g gate_ig w_ig.

    b is learned, or a given constant.
    p_ji = phi(e_ji, v_i, v_j) is one MLP per edge j->i. Its antisymmetric part is what edge j->i
    adds to node i and edge i->j takes from node j, like a force and its reaction: over a
    symmetric graph these terms sum to zero, so the nodes' total is b N plus the gated node terms
    w_ig = psi(v_i)_g. With accelerations as outputs and equal masses, no particle set can
    push itself (momentum is conserved but for the constant b, gravity, and the gated wall terms).
    """

    def __init__(self, latent_size: int, hidden_size: int, num_hidden_layers: int,
                 output_size: int, num_gates: int, constant: torch.Tensor | None = None):
        super().__init__()
        self.output_size, self.num_gates = output_size, num_gates
        self.edge_function = mlp(3 * latent_size, hidden_size, num_hidden_layers, output_size,
                                 layer_norm=False)
        # A constant cancels in p_ji - p_ij: a last-layer bias would get only round-off gradients,
        # which Adam turns into +-lr steps that differ from run to run.
        self.edge_function[-1].register_parameter("bias", None)
        self.node_function = (mlp(latent_size, hidden_size, num_hidden_layers,
                                  num_gates * output_size, layer_norm=False) if num_gates else None)
        if constant is None:
            self.bias = nn.Parameter(torch.zeros(output_size))
        else:  # a known constant (gravity) is not learned
            self.register_buffer("bias", constant.float().reshape(output_size).clone())

    def forward(self, node_latent: torch.Tensor, edge_latent: torch.Tensor,
                edge_index: torch.Tensor, node_gate: torch.Tensor | None = None) -> torch.Tensor:
        receiver = edge_index[1]
        pair = edge_mlp(self.edge_function, edge_latent, node_latent, edge_index)
        antisymmetric = pair - pair[reverse_edges(edge_index, len(node_latent))]
        # Summed in float32 (under bf16 autocast too): the pair terms must cancel to round-off.
        output = self.bias.expand(len(node_latent), -1).index_add(0, receiver, antisymmetric.float())
        if self.node_function is not None:
            if node_gate is None:
                raise ValueError(f"the decoder expects {self.num_gates} gates per node, got none")
            terms = self.node_function(node_latent).view(-1, self.num_gates, self.output_size)
            output = output + (node_gate[:, :, None] * terms).sum(dim=1)
        return output
