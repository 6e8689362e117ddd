"""The pipeline: config and its schema, the artifact layout and contract (tables), the cost
plan, code identities (provenance), logs of jobs, and the stage entry points the rules call."""
