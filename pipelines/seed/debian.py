"""Debian packages as data sources: make sure they are installed, and read their version and license.

Why Debian: its main archive is reachable here (no other download is), every
package carries a machine-checked license file, and several ship real human
speech with transcripts or speaker codes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PackageInfo", "MissingPackagesError", "find_missing_packages", "ensure_packages", "read_package_info",
           "read_license_name"]

_DOC_DIR = Path("/usr/share/doc")

# Packages whose copyright file is free text (not DEP-5): the short name, and a phrase
# that must appear in the file for the name to be claimed (so a changed file is noticed).
_FREE_TEXT_LICENSES: dict[str, tuple[str, str]] = {
    "fillets-ng-data": ("GPL-2", "version 2 dated June, 1991"),
    "fillets-ng-data-cs": ("GPL-2", "version 2 dated June, 1991"),
    "fillets-ng-data-nl": ("GPL-2", "version 2 dated June, 1991"),
    "espeak-ng": ("GPL-3+", "either version 3 of the License"),
    "espeak-ng-data": ("GPL-3+", "either version 3 of the License"),
    "flite": ("Flite (BSD-like, CMU)", "All other files are under following license"),
    "libflite1": ("Flite (BSD-like, CMU)", "All other files are under following license"),
    "festival": ("Festival (BSD-like, CSTR)", "Permission is hereby granted, free of charge, to use and distribute"),
    "festvox-kallpc16k": ("Festvox (BSD-like, CMU/CSTR)", "Permission is hereby granted, free of charge, to use"),
    "festvox-kdlpc16k": ("Festvox (BSD-like, CMU/CSTR)", "Permission is hereby granted, free of charge, to use"),
}


@dataclass(frozen=True)
class PackageInfo:
    """Name, installed version and short license name of a Debian package."""

    name: str
    version: str
    license: str
    copyright_path: str


class MissingPackagesError(RuntimeError):
    """Debian packages the build needs are not installed and cannot be installed here."""


def _dpkg_status(name: str) -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def find_missing_packages(names: list[str]) -> list[str]:
    """The packages among ``names`` that dpkg does not report as installed."""
    return [n for n in dict.fromkeys(names) if "install ok installed" not in _dpkg_status(n)]


def ensure_packages(names: list[str], *, install: bool = True) -> list[str]:
    """Install missing packages with apt-get when allowed and root; else raise with the command to run.

    Returns the packages that were installed (empty when all were there).
    """
    missing = find_missing_packages(names)
    if not missing:
        return []
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        why = "install_missing_packages is false" if not install else "not running as root"
        raise MissingPackagesError(
            f"missing Debian packages: {' '.join(missing)} ({why}); run: sudo {' '.join(cmd)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise MissingPackagesError(f"apt-get install failed for {' '.join(missing)}:\n{proc.stderr[-2000:]}")
    still = find_missing_packages(missing)
    if still:
        raise MissingPackagesError(f"apt-get did not install: {' '.join(still)}")
    return missing


def read_license_name(copyright_text: str, package: str) -> str:
    """Short license name from a ``/usr/share/doc/<pkg>/copyright`` text.

    DEP-5 files: the ``License:`` of the ``Files: *`` paragraph (else the first
    one). Free-text files: a known name, claimed only if its key phrase is there.
    """
    if copyright_text.startswith("Format:"):
        paragraphs = re.split(r"\n\s*\n", copyright_text)
        first_license = None
        for para in paragraphs:
            files = re.search(r"^Files:\s*(.*)$", para, re.M)
            lic = re.search(r"^License:\s*(\S.*)$", para, re.M)
            if lic and first_license is None:
                first_license = lic.group(1).strip()
            if files and lic and files.group(1).strip() == "*":
                return lic.group(1).strip()
        if first_license:
            return first_license
    known = _FREE_TEXT_LICENSES.get(package)
    if known and known[1] in copyright_text:
        return known[0]
    return f"see /usr/share/doc/{package}/copyright"


def read_package_info(name: str) -> PackageInfo:
    """Version and license of an installed package (raises ``MissingPackagesError`` when absent)."""
    status = _dpkg_status(name)
    if "install ok installed" not in status:
        raise MissingPackagesError(f"Debian package {name} is not installed")
    version = status.split("\t", 1)[1].strip()
    path = _DOC_DIR / name / "copyright"
    text = path.read_text(errors="replace") if path.exists() else ""
    return PackageInfo(name=name, version=version, license=read_license_name(text, name), copyright_path=str(path))
