"""Component-aware structured pruning on top of Torch-Pruning's DependencyGraph.

```python
from edgeprune.prune import Components, Budget, prune, build_groups, PrunePlan
comps  = Components.from_children(model)
groups = build_groups(model, example_inputs, comps, mode="component")
result = prune(model, example_inputs, Budget(default=0.5, protect={"encoder"}, round_to=8), components=comps)
result.model, result.plan, result.report
```
"""

from edgeprune.prune.budget import Budget
from edgeprune.prune.component_graph import ComponentGraph, Flow, trace_components
from edgeprune.prune.components import Components
from edgeprune.prune.constraints import Constraints, model_constraints
from edgeprune.prune.errors import PruneError
from edgeprune.prune.fidelity import output_fidelity
from edgeprune.prune.groups import GroupSet, PruneGroup, build_groups
from edgeprune.prune.importance import Taylor
from edgeprune.prune.plan import PrunePlan, architecture_hash, load_pruned, save_weights
from edgeprune.prune.probe import sensitivity
from edgeprune.prune.pruner import PruneResult, prune
from edgeprune.prune.report import PruneReport
from edgeprune.prune.sensitivity import SensitivityReport

__all__ = [
    "Budget",
    "ComponentGraph",
    "Components",
    "Constraints",
    "Flow",
    "GroupSet",
    "PruneError",
    "PruneGroup",
    "PrunePlan",
    "PruneReport",
    "PruneResult",
    "SensitivityReport",
    "Taylor",
    "architecture_hash",
    "build_groups",
    "load_pruned",
    "model_constraints",
    "output_fidelity",
    "prune",
    "save_weights",
    "sensitivity",
    "trace_components",
]
