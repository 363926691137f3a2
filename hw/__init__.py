"""Hardware cost: models that map (model, bit config, board) to resources, cycles, latency.

Modules named ``cost_*.py`` register a cost model with :func:`bitswarm.hw.cost.register_cost`.
"""
