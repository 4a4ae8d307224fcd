"""Readers: one per source format, all yielding :class:`ramos.motion.clip.Clip` on the 22-joint skeleton.

Each reader works in two steps so that batch jobs can fan out over worker processes and skip bad
items: ``list_items(root, **opts)`` returns cheap, picklable items (paths and ids), and
``read_item(item, **opts)`` turns one item into a list of clips or raises
:class:`ramos.motion.clip.ClipError` ("<file>: <reason>"). What is read but worth a warning (a
motion without captions) goes into ``clip.meta["warnings"]``, and a lister may return an
:class:`~ramos.motion.io._common.ItemList` whose ``notes`` name what it left out (a body model
under the AMASS root); ``ramos data prepare`` lists both in the manifest's ``warnings``.

    from ramos.motion.io import READERS
    reader = READERS["builtin"]
    clips = [c for item in reader.list_items(None) for c in reader.read_item(item)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ramos.motion.clip import Clip
from ramos.motion.io import amass, builtin, bvh, deepmimic, humanml3d


@dataclass(frozen=True)
class Reader:
    """A source format: ``list_items(root, **opts)`` then ``read_item(item, **opts) -> list[Clip]``."""

    name: str
    list_items: Callable[..., list[Any]]
    read_item: Callable[..., list[Clip]]
    description: str

    def read_all(self, root: Path | str | None, **read_opts: Any) -> list[Clip]:
        """Every clip under ``root`` with default listing options (no skipping: a bad item raises)."""
        return [c for item in self.list_items(root) for c in self.read_item(item, **read_opts)]


READERS: dict[str, Reader] = {
    "humanml3d": Reader("humanml3d", humanml3d.list_items, humanml3d.read_item,
                        "HumanML3D folder: new_joints/*.npy, texts/*.txt, train/val/test.txt"),
    "amass": Reader("amass", amass.list_items, amass.read_item,
                    "AMASS .npz files (SMPL-H poses) with a user-supplied SMPL-H body model"),
    "deepmimic": Reader("deepmimic", deepmimic.list_items, deepmimic.read_item,
                        "DeepMimic clips in a pybullet_data-like folder (data/motions, humanoid/humanoid.urdf)"),
    "bvh": Reader("bvh", bvh.list_items, bvh.read_item, "BVH files with a joint-name map"),
    "builtin": Reader("builtin", builtin.list_items, builtin.read_item,
                      "the embedded DeepMimic set (20 clips, labelled) shipped with the package"),
}

__all__ = ["READERS", "Reader"]
