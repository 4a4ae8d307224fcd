"""Guo et al. (2022)'s text-motion evaluator, the one the papers' HumanML3D tables are measured with,
loaded from the files a user supplies (``ramos evaluate --t2m-evaluator DIR``); nothing is downloaded.

The folder holds what the T2M / MDM / MLD evaluation set-ups unpack (found anywhere below DIR):

    text_mot_match/model/finest.tar     the evaluator's weights: ``movement_encoder``,
                                        ``motion_encoder``, ``text_encoder`` state dicts
    meta/mean.npy, meta/std.npy         (263,) statistics the evaluator normalises motions with
                                        (T2M's Comp_v6_KLD01/meta; MDM's t2m_mean.npy / t2m_std.npy)
    our_vab_data.npy                    (N, 300) GloVe vectors
    our_vab_words.pkl, our_vab_idx.pkl  the words (a list) and word -> row (a dict)

Loading refuses anything but plain tensors, arrays, numbers, strings, lists and dicts: the weights
with ``torch.load(weights_only=True)``, the arrays with ``allow_pickle=False``, the two word files
with an unpickler that resolves no class or function (a file that names one is an error, not
code that runs). A missing file is a one-line error naming it.

Motions are scored as the evaluator expects: joint positions -> HumanML3D vectors
(:mod:`ramos.motion.hml263`), the last 4 (foot contacts) dropped, normalised with the evaluator's
mean and std, cropped to a multiple of 4 frames and at most 196, the movement encoder's
(T/4, 512) codes through the motion GRU. Captions are their HumanML3D ``word/POS`` tokens (up to 20,
between ``sos`` and ``eos``), each a GloVe vector plus a one-hot of its POS (15 classes; the
vocabulary's location, body-part, object, action and manner words get their own), through the
text GRU. Captions without tokens are tagged by :func:`ramos.motion.text.pos_tokens`, a closed-class
guess: numbers from such captions are not comparable with the papers'.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from ramos.motion import hml263

UNIT_LENGTH = 4
MAX_MOTION_FRAMES = 196
MAX_TEXT_TOKENS = 20
WORD_DIM = 300
POS_CLASSES = ("VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV", "Loc_VIP", "Body_VIP", "Obj_VIP",
               "Act_VIP", "Desc_VIP", "OTHER")
"""The one-hot classes of a token (T2M's ``POS_enumerator``, in its order)."""
VIP_WORDS: dict[str, tuple[str, ...]] = {
    "Loc_VIP": ("left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back", "backward",
                "up", "down", "straight", "curve"),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee", "shoulder",
                 "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball", "basketball"),
    "Act_VIP": ("walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance", "jump",
                "turn", "stumble", "dance", "stop", "sit", "lift", "lower", "raise", "wash", "stand", "kneel",
                "stroll", "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate", "spin", "spread",
                "climb"),
    "Desc_VIP": ("slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad", "happily",
                 "angrily", "sadly"),
}
"""Words whose POS class is replaced by their own group (T2M's ``VIP_dict``)."""


class T2MEvaluatorError(ValueError):
    """A missing, unreadable or unsafe evaluator file (one line, naming it)."""


# --- the networks (T2M's layout, so that the published state dicts load) -------------------------------
class MovementConvEncoder(nn.Module):
    """(B, T, 259) -> (B, T/4, 512): two strided convolutions, then a linear map."""

    def __init__(self, input_size: int = hml263.DIM - 4, hidden: int = 512, output: int = 512) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Conv1d(input_size, hidden, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2),
                                  nn.Conv1d(hidden, output, 4, 2, 1), nn.Dropout(0.2), nn.LeakyReLU(0.2))
        self.out_net = nn.Linear(output, output)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_net(self.main(x.permute(0, 2, 1)).permute(0, 2, 1))


class _BiGRUCo(nn.Module):
    """An input map, a bidirectional GRU from a learnt initial state, and an output head on the last states."""

    def __init__(self, input_size: int, hidden: int, output: int) -> None:
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(nn.Linear(hidden * 2, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2),
                                        nn.Linear(hidden, output))
        self.hidden = nn.Parameter(torch.zeros(2, 1, hidden))

    def _encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.input_emb(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, self.hidden.repeat(1, x.shape[0], 1))
        return self.output_net(torch.cat([last[0], last[1]], -1))


class MotionEncoderBiGRUCo(_BiGRUCo):
    """Movement codes (B, T/4, 512) and their lengths -> (B, 512)."""

    def __init__(self, input_size: int = 512, hidden: int = 1024, output: int = 512) -> None:
        super().__init__(input_size, hidden, output)

    def forward(self, movements: Tensor, lengths: Tensor) -> Tensor:
        return self._encode(movements, lengths)


class TextEncoderBiGRUCo(_BiGRUCo):
    """Word vectors (B, L, 300), POS one-hots (B, L, 15) and lengths -> (B, 512)."""

    def __init__(self, word_size: int = WORD_DIM, pos_size: int = len(POS_CLASSES), hidden: int = 512,
                 output: int = 512) -> None:
        super().__init__(word_size, hidden, output)
        self.pos_emb = nn.Linear(pos_size, word_size)

    def forward(self, words: Tensor, pos: Tensor, lengths: Tensor) -> Tensor:
        return self._encode(words + self.pos_emb(pos), lengths)


# --- safe loading -------------------------------------------------------------------------------------
class _PlainUnpickler(pickle.Unpickler):
    """Rebuilds lists, dicts, strings and numbers only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only plain lists, dicts, strings and "
                                     "numbers are read)")


def load_plain_pickle(path: Path) -> Any:
    """A pickle of plain data (see :class:`_PlainUnpickler`); :class:`T2MEvaluatorError` otherwise."""
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise T2MEvaluatorError(f"{path}: not a plain pickle of words ({exc})") from None


def _find(root: Path, names: Sequence[str], what: str, under: str | None = None) -> Path:
    """The first file below ``root`` called one of ``names`` (inside a folder ``under`` when given)."""
    for name in names:
        for path in sorted(root.rglob(name)):
            if path.is_file() and (under is None or under in path.parts):
                return path
    where = f" inside a {under}/ folder" if under else ""
    raise T2MEvaluatorError(f"{root}: no {what} ({' or '.join(names)}{where}) below this folder")


def _array(path: Path, shape_tail: tuple[int, ...] | None = None) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise T2MEvaluatorError(f"{path}: not a plain array ({' '.join(str(exc).split())})") from None
    except OSError as exc:
        raise T2MEvaluatorError(f"{path}: unreadable ({exc})") from None
    if shape_tail is not None and arr.shape[-len(shape_tail):] != shape_tail:
        raise T2MEvaluatorError(f"{path}: shape {arr.shape}, expected (..., {', '.join(map(str, shape_tail))})")
    return arr


class T2MEvaluator:
    """The loaded evaluator (see the module doc): :meth:`embed_motions`, :meth:`embed_captions`."""

    def __init__(self, movement: MovementConvEncoder, motion: MotionEncoderBiGRUCo, text: TextEncoderBiGRUCo,
                 mean: np.ndarray, std: np.ndarray, word_vectors: dict[str, np.ndarray], files: dict[str, str],
                 device: str = "cpu") -> None:
        self.movement, self.motion, self.text = (m.to(device).eval() for m in (movement, motion, text))
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.words = word_vectors
        self.files = files
        self.device = device

    @classmethod
    def load(cls, root: str | Path, device: str = "cpu") -> T2MEvaluator:
        """Read the evaluator's files below ``root`` (see the module doc)."""
        root = Path(root)
        if not root.is_dir():
            raise T2MEvaluatorError(f"{root}: no such folder (the T2M evaluator's files)")
        weights = _find(root, ["finest.tar"], "evaluator weights", under="text_mot_match")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - anything torch refuses or cannot parse
            raise T2MEvaluatorError(f"{weights}: not a plain checkpoint of tensors "
                                    f"({' '.join(str(exc).split())[:200]})") from None
        nets = {"movement_encoder": MovementConvEncoder(), "motion_encoder": MotionEncoderBiGRUCo(),
                "text_encoder": TextEncoderBiGRUCo()}
        for key, net in nets.items():
            if not isinstance(state, dict) or key not in state:
                raise T2MEvaluatorError(f"{weights}: no {key!r} state dict in it")
            try:
                net.load_state_dict(state[key])
            except RuntimeError as exc:
                raise T2MEvaluatorError(f"{weights}: {key} does not fit T2M's network "
                                        f"({' '.join(str(exc).split())[:200]})") from None
        try:
            mean_path = _find(root, ["mean.npy"], "motion mean", under="meta")
            std_path = mean_path.with_name("std.npy")
        except T2MEvaluatorError:
            mean_path = _find(root, ["t2m_mean.npy", "mean.npy"], "motion mean (meta/mean.npy or t2m_mean.npy)")
            std_path = mean_path.with_name(mean_path.name.replace("mean", "std"))
        if not std_path.is_file():
            raise T2MEvaluatorError(f"{std_path}: missing (the motion std beside {mean_path.name})")
        mean, std = _array(mean_path, (hml263.DIM,)), _array(std_path, (hml263.DIM,))
        data_path = _find(root, ["our_vab_data.npy"], "GloVe vectors")
        vectors = _array(data_path, (WORD_DIM,))
        words = load_plain_pickle(_find(root, ["our_vab_words.pkl"], "GloVe word list"))
        index = load_plain_pickle(_find(root, ["our_vab_idx.pkl"], "GloVe word index"))
        if not isinstance(words, list) or not isinstance(index, dict):
            raise T2MEvaluatorError(f"{data_path.parent}: our_vab_words.pkl must hold a list and our_vab_idx.pkl a "
                                    "dict")
        try:
            table = {w: vectors[int(index[w])] for w in words}
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise T2MEvaluatorError(f"{data_path.parent}: the GloVe word list, index and vectors disagree ({exc})") \
                from None
        if "unk" not in table:
            raise T2MEvaluatorError(f"{data_path.parent}: the GloVe vocabulary has no 'unk' entry")
        files = {"weights": str(weights), "mean": str(mean_path), "std": str(std_path), "glove": str(data_path)}
        return cls(nets["movement_encoder"], nets["motion_encoder"], nets["text_encoder"], mean, std, table, files,
                   device)

    # --- motions --------------------------------------------------------------------------------------
    def motion_vectors(self, motions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Normalised HumanML3D vectors (N, 196, 259) of joint motions (T_i, 22, 3) at 20 fps, zero
        padded, and their lengths (multiples of 4; each motion cut to its largest)."""
        out = np.zeros((len(motions), MAX_MOTION_FRAMES, hml263.DIM - 4), np.float32)
        lengths = np.zeros(len(motions), np.int64)
        for i, m in enumerate(motions):
            v = (hml263.features(m) - self.mean) / self.std
            n = min(MAX_MOTION_FRAMES, len(v)) // UNIT_LENGTH * UNIT_LENGTH
            if n == 0:
                raise ValueError(f"motion {i}: {len(m)} frames; the evaluator needs at least {UNIT_LENGTH + 1}")
            out[i, :n] = v[:n, :-4]
            lengths[i] = n
        return out, lengths

    @torch.no_grad()
    def embed_motions(self, motions: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """(N, 512) motion embeddings."""
        vecs, lengths = self.motion_vectors(motions)
        out = []
        for a in range(0, len(vecs), batch_size):
            x = torch.as_tensor(vecs[a:a + batch_size], device=self.device)
            n = torch.as_tensor(lengths[a:a + batch_size] // UNIT_LENGTH)
            out.append(self.motion(self.movement(x), n).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 512), np.float32)

    # --- captions -------------------------------------------------------------------------------------
    def token_inputs(self, tokens: str) -> tuple[np.ndarray, np.ndarray, int]:
        """Word vectors (22, 300), POS one-hots (22, 15) and length of one caption's ``word/POS`` tokens."""
        toks = [t for t in tokens.split() if "/" in t][:MAX_TEXT_TOKENS]
        toks = ["sos/OTHER", *toks, "eos/OTHER"]
        n = len(toks)
        toks += ["unk/OTHER"] * (MAX_TEXT_TOKENS + 2 - n)
        words = np.zeros((len(toks), WORD_DIM), np.float32)
        pos = np.zeros((len(toks), len(POS_CLASSES)), np.float32)
        for k, tok in enumerate(toks):
            word, tag = tok.rsplit("/", 1)
            if word in self.words:
                words[k] = self.words[word]
                tag = next((group for group, vip in VIP_WORDS.items() if word in vip), tag)
            else:
                words[k], tag = self.words["unk"], "OTHER"
            pos[k, POS_CLASSES.index(tag) if tag in POS_CLASSES else POS_CLASSES.index("OTHER")] = 1.0
        return words, pos, n

    @torch.no_grad()
    def embed_captions(self, tokens: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(N, 512) embeddings of captions given as HumanML3D ``word/POS`` token strings."""
        out = []
        for a in range(0, len(tokens), batch_size):
            rows = [self.token_inputs(t) for t in tokens[a:a + batch_size]]
            words = torch.as_tensor(np.stack([r[0] for r in rows]), device=self.device)
            pos = torch.as_tensor(np.stack([r[1] for r in rows]), device=self.device)
            n = torch.as_tensor([r[2] for r in rows])
            out.append(self.text(words, pos, n).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 512), np.float32)
