from __future__ import annotations

import importlib.util

# maskprep/torch needs the optional torch extra; without it its doctests
# cannot be collected. CI installs torch, so they run there.
collect_ignore: list[str] = []
if importlib.util.find_spec("torch") is None:
    collect_ignore.append("maskprep/torch")
