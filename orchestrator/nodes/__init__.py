"""The graph's nodes, one module per node: each is ``(state, runtime) -> partial update``,
its dependencies in ``runtime.context`` (:class:`orchestrator.context.GraphContext`)."""
