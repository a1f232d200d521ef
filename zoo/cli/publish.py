"""``zoo publish NAME``: upload a registry checkpoint as a W&B ``model`` artifact.

    zoo publish protonet-conv4-glyphs-5w1s [--entity ME] [--project metazoo]

uploads a registry checkpoint (after verifying its sha256) as a ``model`` artifact whose metadata is the entry
(system, setting, metrics, command, model, config, sha256) and prints the reference to put in a registry entry
(``wandb-artifact://...``, read back by :mod:`zoo.hub.artifacts`). Online only: without W&B credentials it says so and
uploads nothing.
"""

from __future__ import annotations

import argparse
import sys

from safefiles import ChecksumError, sha256_file
from zoo.hub.artifacts import SCHEME
from zoo.hub.pretrained import registry_entry, resolve_weights


def publish(name: str, project: str = "metazoo", entity: str | None = None) -> str:
    """Upload registry checkpoint ``name`` as a W&B ``model`` artifact; returns its ``wandb-artifact://`` ref.

    The weights are found where :func:`zoo.hub.pretrained.load_pretrained` finds them (``resolve_weights``: the
    repository, ``$METAZOO_CHECKPOINTS``, the entry's url). Raises FileNotFoundError naming the places looked in
    when they are nowhere, RuntimeError without credentials (nothing is uploaded) and ChecksumError when the local
    weights do not match the registry.
    """
    from zoo.cli.wandb_logger import wandb_credentials_configured  # Lightning: only when publishing

    entry = registry_entry(name)
    weights = resolve_weights(entry)
    if (actual := sha256_file(weights)) != entry.sha256:
        raise ChecksumError(f"{weights}: sha256 {actual}, but the registry records {entry.sha256}; not published")
    if not wandb_credentials_configured():
        raise RuntimeError("publishing needs W&B credentials (WANDB_API_KEY or `wandb login`); nothing was uploaded")
    import wandb

    metadata = {"sha256": entry.sha256, "system": entry.system, "setting": entry.setting, "metrics": entry.metrics,
                "command": entry.command, "model": entry.model, "config": entry.config, "overrides": entry.overrides}
    run = wandb.init(project=project, entity=entity, job_type="publish", name=f"publish-{name}", mode="online")
    try:
        artifact = wandb.Artifact(name, type="model", description=entry.notes or f"{entry.system}: {entry.setting}",
                                  metadata=metadata)
        artifact.add_file(str(weights), name=weights.name)
        run.log_artifact(artifact)
        artifact.wait()
        return f"{SCHEME}{run.entity}/{run.project}/{name}:{artifact.version}/{weights.name}"
    finally:
        run.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a registry entry (see zoo.list_pretrained())")
    parser.add_argument("--project", default="metazoo")
    parser.add_argument("--entity", default=None, help="default: your W&B default entity")
    args = parser.parse_args(argv)
    try:
        ref = publish(args.name, args.project, args.entity)
    except (KeyError, RuntimeError, ValueError, OSError) as err:  # ChecksumError is a ValueError
        print(f"zoo publish: {err.args[0] if err.args else err}", file=sys.stderr)  # KeyError's str() adds quotes
        return 2
    print(f"published {args.name}; registry weights source: {ref}")
    return 0
