"""The ``zoo`` command: its Lightning-free front (``commands``, the console script), the Lightning CLI
(``lightning_cli``), config composition and reference resolution, runs, ``zoo compare``, ``zoo report``,
``zoo publish`` and the W&B logger.
"""
