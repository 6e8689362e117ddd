"""The study's artifact contract: the config and its checks, a job's arguments, the artifact
layout and schemas, identity stamps, and the checks of artifact files against their paths."""
