"""What every method builds on: ``base.ZooModule`` (optimiser, hyper-parameters, per-item records),
``episodic.EpisodicModule`` (episodic classification), the inner-loop and RL toolkits, metrics
with their confidence intervals, learning-rate schedules.
"""
