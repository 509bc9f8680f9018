"""A simulated chemical plant, so a fresh install shows a living system and tests have ground truth.

``spec`` reads the plant's definition (enterprise → site → areas → equipment → sensors with their
alarm limits) from ``data/plant.toml``; ``signals`` turns it into sensor readings with daily cycles,
coupled process variables, injected process faults and sensor failures, and keeps a record of every
injected event so detectors can be scored against what really happened.
"""
