"""The skeleton: joint names, parents, kinematic chains, left/right mirror map, bones, adjacency.

Everything downstream takes a :class:`Skeleton` instead of hard-coding joint counts or indices.
The default is the 22-joint HumanML3D / SMPL body layout (y up; a subject facing +z has its left
side at +x).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

HUMANML3D_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
HUMANML3D_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20),
)


@dataclass(frozen=True)
class Skeleton:
    """A tree of named joints.

    Attributes:
        names: joint names, index order.
        parents: parent index per joint, -1 for the root.
        chains: kinematic chains (root-to-leaf index lists), used for drawing and colouring.
        feet: indices of the foot joints (contact, skating); toes/feet, not ankles.
        up_axis: index of the vertical axis (1: y up).
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    chains: tuple[tuple[int, ...], ...]
    feet: tuple[int, ...] = field(default=())
    up_axis: int = 1

    def __post_init__(self) -> None:
        if len(self.names) != len(self.parents):
            raise ValueError("names and parents differ in length")
        roots = [i for i, p in enumerate(self.parents) if p < 0]
        if len(roots) != 1:
            raise ValueError(f"a skeleton needs exactly one root, got {len(roots)}")
        for i, p in enumerate(self.parents):
            if p >= i and p != -1:
                raise ValueError(f"joint {self.names[i]}: parent must come earlier (topological order)")

    @classmethod
    def humanml3d(cls) -> Skeleton:
        """The 22-joint HumanML3D / SMPL body skeleton."""
        return cls.from_chains(HUMANML3D_JOINTS, HUMANML3D_CHAINS,
                               feet=(HUMANML3D_JOINTS.index("left_foot"), HUMANML3D_JOINTS.index("right_foot")))

    @classmethod
    def from_chains(cls, names: tuple[str, ...] | list[str], chains: tuple[tuple[int, ...], ...] | list[list[int]],
                    feet: tuple[int, ...] = ()) -> Skeleton:
        """Build a skeleton whose parents follow from its kinematic chains."""
        parents = [-1] * len(names)
        for chain in chains:
            for a, b in zip(chain[:-1], chain[1:]):
                parents[b] = a
        return cls(tuple(names), tuple(parents), tuple(tuple(c) for c in chains), tuple(feet))

    # --- derived structure -------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def root(self) -> int:
        return self.parents.index(-1)

    def index(self, name: str) -> int:
        """Index of a joint by name (a clear error for unknown names)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown joint {name!r}") from None

    @cached_property
    def bones(self) -> np.ndarray:
        """(J-1, 2) int array of (parent, child) pairs."""
        return np.array([(p, c) for c, p in enumerate(self.parents) if p >= 0], dtype=np.int64)

    @cached_property
    def mirror_map(self) -> np.ndarray:
        """Index permutation swapping left_* and right_* joints (self-map for central joints)."""
        perm = np.arange(self.num_joints)
        for i, n in enumerate(self.names):
            for a, b in (("left_", "right_"), ("right_", "left_")):
                if n.startswith(a):
                    perm[i] = self.index(b + n[len(a):])
        return perm

    @cached_property
    def side(self) -> np.ndarray:
        """Per joint: -1 right, +1 left, 0 centre (used to colour renders)."""
        return np.array([1 if n.startswith("left_") else -1 if n.startswith("right_") else 0 for n in self.names])

    def adjacency(self, self_loops: bool = True) -> np.ndarray:
        """(J, J) symmetric 0/1 adjacency of the bone graph."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        b = self.bones
        a[b[:, 0], b[:, 1]] = 1.0
        a[b[:, 1], b[:, 0]] = 1.0
        if self_loops:
            a[np.arange(self.num_joints), np.arange(self.num_joints)] = 1.0
        return a

    def normalized_adjacency(self) -> np.ndarray:
        """D^-1/2 (A + I) D^-1/2, the GCN propagation matrix."""
        a = self.adjacency(self_loops=True)
        d = 1.0 / np.sqrt(a.sum(1))
        return (a * d[:, None] * d[None, :]).astype(np.float32)

    def bone_lengths(self, positions: np.ndarray) -> np.ndarray:
        """Bone lengths (..., J-1) of positions (..., J, 3)."""
        b = self.bones
        return np.linalg.norm(positions[..., b[:, 1], :] - positions[..., b[:, 0], :], axis=-1)

    @cached_property
    def topological_bones(self) -> np.ndarray:
        """:attr:`bones` ordered so that every parent's own bone comes before its children's."""
        depth = np.zeros(self.num_joints, dtype=np.int64)
        for j in range(self.num_joints):
            k = j
            while self.parents[k] >= 0:
                depth[j] += 1
                k = self.parents[k]
        return self.bones[np.argsort(depth[self.bones[:, 1]], kind="stable")]

    # --- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "parents": list(self.parents),
                "chains": [list(c) for c in self.chains], "feet": list(self.feet), "up_axis": self.up_axis}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Skeleton:
        return cls(tuple(d["names"]), tuple(int(p) for p in d["parents"]),
                   tuple(tuple(int(i) for i in c) for c in d["chains"]),
                   tuple(int(i) for i in d.get("feet", ())), int(d.get("up_axis", 1)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


HUMANML3D = Skeleton.humanml3d()
