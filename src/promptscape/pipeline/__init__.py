"""The pipeline: orchestration of the workflow: one record per rule (rules), the job grid
(grid), the memory and time models (costs), the cost plan (plan), code identities
(provenance) and the stage entry points the rules call."""
