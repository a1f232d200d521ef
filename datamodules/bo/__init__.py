"""Black-box optimisation tasks for meta-BO (NAP): task families, the HPO-B reader and their DataModules.

A *task* is a function over a finite candidate pool in ``[0, 1]^D``: ``x`` ``[N, D]``, ``y`` ``[N]`` min-max
normalised over the pool (so the optimum is 1 and the worst point 0; values are *maximised*), plus the indices of
an initial design. Three kinds of family:

* :class:`GPPriorFamily`: samples of a GP prior (RBF or Matern-5/2, random lengthscale) on a random pool;
* :class:`TestFunctionFamily`: a BoTorch test function (Branin, Hartmann-3/6, Ackley, Levy, ...) under a random
  shift, scaling and rotation of its input, so one family holds many related tasks;
* HPO-B (Pineda Arango et al., 2021): meta-train / validation / test datasets read from the official JSON files.
  Training tasks come from the GP-surrogate sampler of the official NAP code (one GP per meta-train dataset,
  perturbed inputs, posterior samples); validation and test tasks are the real datasets, test ones from the
  official ``bo-initializations.json`` seeds ``test0``..``test4``.

Every task is a pure function of ``(seed, split, epoch, index)`` through the same keyed generator as the episode
sampler (:func:`datamodules.episodes.episode_generator`); validation and test use epoch 0, so they are fixed sets.
Splits are disjoint: synthetic splits draw from unrelated generator streams (a continuous distribution, so two
splits share a task with probability 0), HPO-B splits are its disjoint meta-dataset files. Under DDP the
:class:`~datamodules.episodes.EpisodeSampler` stripes task indices over ranks.

One idea a module: ``tasks`` (the task dict, batching, the family interface), ``base`` (:class:`FunctionDataModule`),
``synthetic`` (the two synthetic families and their DataModules), ``hpob`` (HPO-B's spaces, files and DataModule)
and ``gp_surrogate`` (the GP-surrogate sampler of HPO-B's training tasks).
"""

from datamodules.bo.base import FunctionDataModule
from datamodules.bo.hpob import HPOBFunctionsDataModule
from datamodules.bo.synthetic import GPPriorFunctionsDataModule, SyntheticFunctionsDataModule, TestFunctionsDataModule

# The names before issue 22's naming rule, so configs and code written with them still work (zoo.hub.moved.MOVED).
GPPriorFunctions, HPOBFunctions = GPPriorFunctionsDataModule, HPOBFunctionsDataModule
SyntheticFunctions, TestFunctions = SyntheticFunctionsDataModule, TestFunctionsDataModule

__all__ = ["FunctionDataModule", "GPPriorFunctionsDataModule", "HPOBFunctionsDataModule",
           "SyntheticFunctionsDataModule", "TestFunctionsDataModule"]
