"""Real ambience recordings in Debian packages, used as labeled background noise.

Tux Paint's stamp sound effects include steady household and outdoor
recordings (washing machine, vacuum cleaner, kettle, saw, bees, birdsong,
fire engine, fireworks, thunder); Fish Fillets has underwater bubbles. The
noise label names the recording (``ambience:washing_machine``).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.seed.items import FileSource

__all__ = ["AMBIENCE_PACKAGES", "list_ambience_recordings"]

_TUXPAINT = Path("/usr/share/tuxpaint/stamps")
_FILLETS = Path("/usr/share/games/fillets-ng/sound/share")
_CATALOG: tuple[tuple[str, Path, str], ...] = (
    ("washing_machine", _TUXPAINT / "household/Washing-machine.ogg", "tuxpaint-stamps-default"),
    ("vacuum_cleaner", _TUXPAINT / "household/vacuum_cleaner.ogg", "tuxpaint-stamps-default"),
    ("kettle", _TUXPAINT / "household/kettle.ogg", "tuxpaint-stamps-default"),
    ("saw", _TUXPAINT / "household/tools/saw.ogg", "tuxpaint-stamps-default"),
    ("bees", _TUXPAINT / "animals/insects/bee.ogg", "tuxpaint-stamps-default"),
    ("birdsong", _TUXPAINT / "animals/birds/blackbird.ogg", "tuxpaint-stamps-default"),
    ("fire_engine", _TUXPAINT / "vehicles/emergency/firetruck.ogg", "tuxpaint-stamps-default"),
    ("fireworks", _TUXPAINT / "seasonal/newyears/fireworks.ogg", "tuxpaint-stamps-default"),
    ("thunder", _TUXPAINT / "naturalforces/lightningbolt.ogg", "tuxpaint-stamps-default"),
    ("bubbles", _FILLETS / "sp-bubles_00.ogg", "fillets-ng-data"),
)

AMBIENCE_PACKAGES: tuple[str, ...] = tuple(sorted({pkg for _, _, pkg in _CATALOG}))


def list_ambience_recordings() -> list[tuple[str, FileSource, str]]:
    """(name, source, Debian package) of every catalogued recording that is installed here."""
    return [(name, FileSource(str(path)), pkg) for name, path, pkg in _CATALOG if path.exists()]
