"""The pipeline: orchestration of the workflow: the cost plan, code identities (provenance)
and the stage entry points the rules call."""
