"""The built-in tasks, loaded from the Hugging Face hub (`--source hub`) instead of local files.

`HUB_LOADERS` maps task names to loaders of type `Callable[[int, Path | None], Task]`, called as
`loader(split_id, data_dir)`. Only clinc150, banking77 and clinc150-domain-shift use `data_dir`:
their class splits (ProtAugment's label files, CLINC150's `domains.json`) ship with the local data
and not with the hub data sets, so they are read from the vendored copy when present, else from
`data_dir/<data set>/`. The other loaders ignore `data_dir`.

Each loader keeps the card and the class split logic of the local loader. A task built here says
where its data came from: `split_name` starts with `hub:`, `data_sha256` hashes the converted
examples (so it never equals the hash of local files), `notes` name the hub data set, config and
revision, and `data_path` is the pseudo-path `huggingface.co/datasets/<id>`, not a local folder.

`datasets` >= 4 no longer runs loading scripts, so the script-based data sets (banking77, few_rel,
cross_ner) are read from the hub's parquet export (revision `refs/convert/parquet`, files
`<config>/<split>/*.parquet`). `datasets` is imported only when a loader runs.
"""

from __future__ import annotations

from functools import partial

from benchmark.core.registry import HUB_TASKS
from tasks.domain_shift import FEWREL_COUNTS
from tasks.hub.classification import (
    load_20newsgroups,
    load_clinc_domain_shift,
    load_fewrel,
    load_fewrel_shift,
    load_intent,
    load_sst,
)
from tasks.hub.ner import load_crossner, load_crossner_shift
from tasks.hub.reading import HubLoader
from tasks.ner import DOMAINS as CROSSNER_DOMAINS
from tasks.relation import DOMAINS as FEWREL_DOMAINS


def _loaders() -> dict[str, HubLoader]:
    """Task name -> hub loader, for every task the hub can serve."""
    loaders: dict[str, HubLoader] = {
        "clinc150": partial(load_intent, "clinc150"),
        "banking77": partial(load_intent, "banking77"),
        "clinc150-domain-shift": load_clinc_domain_shift,
        "sst5": partial(load_sst, "sst5"),
        "sst2": partial(load_sst, "sst2"),
        "20newsgroups": load_20newsgroups,
    }
    for domain in FEWREL_DOMAINS:
        loaders[f"fewrel-{domain}"] = partial(load_fewrel, domain)
    for target in FEWREL_COUNTS:
        loaders[f"fewrel-wiki-to-{target}"] = partial(load_fewrel_shift, target)
    for domain in CROSSNER_DOMAINS:
        loaders[f"crossner-{domain}"] = partial(load_crossner, domain)
        if domain != "conll2003":
            loaders[f"crossner-conll-to-{domain}"] = partial(load_crossner_shift, domain)
    return loaders


HUB_LOADERS: dict[str, HubLoader] = _loaders()


for _name, _loader in HUB_LOADERS.items():
    HUB_TASKS.add(_name, _loader)
