"""Black-box optimisation tasks for meta-BO: synthetic task families (GP prior, BoTorch test functions) and HPO-B,
with their DataModules (functions.py)."""

from datamodules.bo.functions import (FunctionDataModule, GPPriorFunctions, HPOBFunctions, SyntheticFunctions,
                                      TestFunctions)

__all__ = ["FunctionDataModule", "GPPriorFunctions", "HPOBFunctions", "SyntheticFunctions", "TestFunctions"]
