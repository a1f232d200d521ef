"""GPAM vs the multi-view ProtoNet-threshold vs ProtoNet-threshold on real sentences: FewRel 2.0's NYT and
SemEval-2010 validation files (shipped with the package) in fixed relation-disjoint splits of the 42 relations
(22 train / 10 validation / 10 test: ``datamodules.relations.fewrel.NYT_SEMEVAL_SPLITS``), 5-way 1-shot and
5-shot, NOTA rates 0.15 / 0.3 / 0.5, at most 100 sentences per relation. Entity types of the head/tail views:
the generic "entity" (the files give no types offline). The protocol and the methods: ``gpam_wordnet_rel.py``.
Also tests the shipped WordNet-Rel GPAM checkpoint as is on the same test episodes (the transfer a user tries first).

    python benchmarks/gpam_fewrel_nyt_semeval.py --quick     # end-to-end check -> gpam_fewrel_nyt_semeval_quick.json
    python benchmarks/gpam_fewrel_nyt_semeval.py --export    # results; registers gpam-minilm-fewrel-nyt-semeval-5w1s
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpam_wordnet_rel import main

if __name__ == "__main__":
    main(dataset="fewrel-nyt-semeval")
