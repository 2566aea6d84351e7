"""``vanilla`` = plain DepGraph: whole-model groups, interfaces prunable, a declared recurrence couples dims."""

from __future__ import annotations

import torch

from edgeprune.control import Planner, PlannerConfig
from edgeprune.prune import Budget, build_groups, prune


def test_vanilla_prunes_the_tdmpc_latent_and_the_rollout_runs(make_model) -> None:
    model = make_model("tdmpc")
    inputs = model.example_inputs()
    result = prune(model, inputs, Budget(total=0.6), mode="vanilla")
    pruned = result.model
    latent = pruned.encoder[3].out_features
    assert latent < 32 and latent % 8 == 0  # whole SimNorm blocks
    assert pruned.dynamics[6].out_features == latent  # latent in == latent out
    (group,) = [g for g in result.plan.groups if "encoder.3" in g.roots]
    removed = dict(zip(group.roots, group.removed, strict=True))
    assert removed["encoder.3"] == removed["dynamics.6"]  # the same indices on both sides of the loop
    assert abs(result.report.achieved - 0.6) < 0.01
    # external outputs keep their shapes; next_z (declared state) follows the latent
    next_z, reward, q, pi = pruned(*inputs)
    assert next_z.shape == (2, latent) and reward.shape == (2, 1) and q.shape == (2, 2) and pi.shape == (2, 1)
    # the planner's latent rollout (z -> next(z, a) -> ... -> Q(z_H, pi(z_H))) runs on the pruned model
    planner = Planner(pruned, PlannerConfig(horizon=4, iterations=2, num_samples=16, num_elites=4))
    planner.reset(0)
    actions = planner.plan(torch.randn(3, 3))
    assert actions.shape == (3, 1) and torch.isfinite(actions).all()


def test_component_mode_keeps_the_latent_interface_by_default(make_model) -> None:
    model = make_model("tdmpc")
    result = prune(model, model.example_inputs(), Budget(total=0.6), mode="component")
    assert result.model.encoder[3].out_features == result.model.dynamics[6].out_features == 32
    (latent,) = [g for g in result.groups if "encoder.3" in g.roots]
    assert latent.kind == "interface" and not latent.frozen


def test_a_state_output_is_not_frozen_but_an_external_one_is(make_model) -> None:
    model = make_model("tdmpc")
    groups = build_groups(model, model.example_inputs(), mode="vanilla")  # the model's declared constraints
    by_root = {r: g for g in groups for r in g.roots}
    assert by_root["encoder.3"] is by_root["dynamics.6"] and not by_root["dynamics.6"].frozen
    assert by_root["reward.6"].frozen == "model output"
    assert by_root["policy.6"].frozen == "model output"
