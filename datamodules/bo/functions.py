"""Old import path (before issue 22 split this module): re-exports what it held under its old names.

Import from the modules named for each idea instead (:mod:`datamodules.bo`'s docstring lists them). Kept so branches
written before the split still import; ``zoo.hub.moved.MOVED`` maps the old class paths. Delete once nothing imports it.
"""

from datamodules.bo.base import FunctionDataModule
from datamodules.bo.gp_surrogate import (HPOB_GP_FILE, HPOBSurrogateSampler, fit_dataset_gp, load_dataset_gp,
                                         select_gp_rows)
from datamodules.bo.hpob import (HPOB_FILES, HPOB_NAMES, HPOB_SEEDS, HPOB_SPACES, HPOBFunctionsDataModule, HPOBSpace,
                                 hpob_file, read_bo_initializations, read_hpob, resolve_space)
from datamodules.bo.synthetic import (GPPriorFamily, GPPriorFunctionsDataModule, SyntheticFunctionsDataModule,
                                      TestFunctionFamily, TestFunctionsDataModule, kernel_matrix, random_rotation)
from datamodules.bo.tasks import (TaskDataset, TaskFamily, collate_tasks, draw_initial_design, make_task,
                                  minmax_normalise)

# the names this module gave them
GPPriorFunctions, HPOBFunctions = GPPriorFunctionsDataModule, HPOBFunctionsDataModule
SyntheticFunctions, TestFunctions = SyntheticFunctionsDataModule, TestFunctionsDataModule

__all__ = ["FunctionDataModule", "GPPriorFamily", "GPPriorFunctions", "HPOBFunctions", "HPOBSpace",
           "HPOBSurrogateSampler", "HPOB_FILES", "HPOB_GP_FILE", "HPOB_NAMES", "HPOB_SEEDS", "HPOB_SPACES",
           "SyntheticFunctions", "TaskDataset",
           "TaskFamily", "TestFunctionFamily", "TestFunctions", "collate_tasks", "draw_initial_design",
           "fit_dataset_gp", "hpob_file", "kernel_matrix", "load_dataset_gp", "make_task", "minmax_normalise",
           "random_rotation", "read_bo_initializations", "read_hpob", "resolve_space", "select_gp_rows"]
