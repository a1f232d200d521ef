"""Package data: the shipped configs and the checkpoint registry (outside the packages), and the real data sets the
benchmarks read offline, each beside its licence: FewRel 2.0 NYT / SemEval (``datamodules/relations/data/``) and
Omniglot's minimal sets and one-shot runs (``datamodules/images/data/``, ``datamodules.images.OmniglotSmall``).

``configs/`` and ``checkpoints/registry.yaml`` stay where the README, tests and benchmarks use them; a wheel maps
them into the package as ``zoo/configs/`` and ``zoo/checkpoints/registry.yaml`` (``zoo.hub.shipped`` finds either), so
a non-editable install can list and load every checkpoint and run a shipped config from any directory. The
weights are not packaged: they resolve from ``$METAZOO_CHECKPOINTS`` or the entry's ``url`` (``zoo.hub.pretrained``).
Everything else is in pyproject.toml; this mapping is here because pyproject's ``packages.find`` cannot combine
discovered packages with mapped ones.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["zoo*", "datamodules*", "callbacks*", "safefiles*"]), "zoo.configs", "zoo.checkpoints"],
    package_dir={"zoo.configs": "configs", "zoo.checkpoints": "checkpoints"},
    package_data={"zoo.configs": ["**/*.yaml"], "zoo.checkpoints": ["registry.yaml"],
                  # FewRel 2.0 NYT / SemEval files with their MIT licence (datamodules.relations.FewRelNYTSemEval)
                  "datamodules.relations": ["data/fewrel/*.json", "data/fewrel/LICENSE", "data/fewrel/README.md"],
                  # Omniglot's minimal background sets and one-shot runs, with their licence (OmniglotSmall)
                  "datamodules.images": ["data/omniglot/*.zip", "data/omniglot/LICENSE", "data/omniglot/README.md"]},
    include_package_data=False,  # only the files named above, never the weights beside the registry
)
