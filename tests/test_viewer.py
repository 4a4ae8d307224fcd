"""The offline 3D viewer page (``ramos.motion.viewer``, ``ramos view``), checked in a real headless browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ramos.cli import main
from ramos.motion.generate import export_motions
from ramos.motion.io.builtin import load_all
from ramos.motion.preprocess import normalize, resample
from ramos.motion.render import SIDE_COLOURS
from ramos.motion.skeleton import HUMANML3D
from ramos.motion.viewer import ViewerError, write_viewer

FPS = 20.0
CLIPS = ("humanoid3d_walk", "humanoid3d_cartwheel", "humanoid3d_kick", "walker_turn_left0")
PROMPTS = ("a person walks forward", None, "a person kicks with the right leg", None)
SETTINGS = {"sampler": "dpmsolver++", "steps": 10, "guidance": 2.0, "checkpoint": "runs/pipeline/diffusion/last.ckpt"}
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (the page is checked in a "
                                                                "headless browser)")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A real `ramos generate`-style folder: embedded clips at 20 fps, floor at 0, facing +z, with index.json."""
    clips = {c.source_id: c for c in load_all()}
    motions = [normalize(resample(clips[k].positions, clips[k].fps, FPS), HUMANML3D) for k in CLIPS]
    labels = [clips[k].labels[0] for k in CLIPS]
    out = tmp_path_factory.mktemp("viewer") / "gen"
    return export_motions(motions, out, FPS, HUMANML3D, labels=labels, seeds=[7, 8, 9, 10], settings=SETTINGS,
                          video="none", bvh=False, glb=False, viewer=False, progress=False,
                          prompts=list(PROMPTS))


@pytest.fixture
def folder(generated, tmp_path) -> Path:
    """A private copy, for tests that write the page or break the folder."""
    return Path(shutil.copytree(generated, tmp_path / "gen"))


def _page_data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script id="ramos-data" type="application/json">(.*?)</script>', text, re.DOTALL)
    assert match, "no embedded data"
    return json.loads(match.group(1))


def _decode(m: dict) -> np.ndarray:
    q = np.frombuffer(base64.b64decode(m["data"]), dtype="<i2").astype(np.float64)
    return (q.reshape(m["frames"], -1, 3) * m["step"] + np.array(m["origin"])).astype(np.float32)


def test_page_is_one_offline_file_with_the_motions_embedded(folder):
    page = write_viewer(folder)
    assert page == folder / "index.html" and page.is_file()
    text = page.read_text(encoding="utf-8")
    # nothing is fetched: no external script, style, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert not list(folder.glob(".index.html*"))  # written atomically: no temporary left behind
    data = _page_data(page)
    index = json.loads((folder / "index.json").read_text())
    assert data["title"] == "gen" and data["fps"] == FPS and data["settings"] == SETTINGS
    assert [m["file"] for m in data["motions"]] == [m["files"]["npy"] for m in index["motions"]]
    assert [m["seed"] for m in data["motions"]] == [7, 8, 9, 10]
    assert [m["prompt"] for m in data["motions"]] == list(PROMPTS)
    for m, entry in zip(data["motions"], index["motions"]):
        positions = np.load(folder / entry["files"]["npy"])
        assert m["frames"] == entry["frames"] == positions.shape[0]
        assert np.abs(_decode(m) - positions).max() <= 0.0005 + 1e-6  # rounded to the millimetre
    # colours are render's: left blue, right red, centre grey
    assert data["sideColours"] == {"left": SIDE_COLOURS[1], "right": SIDE_COLOURS[-1], "centre": SIDE_COLOURS[0]}
    lw = HUMANML3D.index("left_wrist")
    assert [b[2] for b in data["bones"] if b[1] == lw] == [SIDE_COLOURS[1]]


def test_text_cannot_break_out_of_the_page(folder):
    index = json.loads((folder / "index.json").read_text())
    index["motions"][0]["prompt"] = "</script><script>alert(1)</script> & <!-- x"
    (folder / "index.json").write_text(json.dumps(index))
    page = write_viewer(folder, title="<b>mine</b> & co")
    text = page.read_text(encoding="utf-8")
    assert text.count("</script>") == 2 and "<script>alert" not in text and "<b>mine" not in text
    data = _page_data(page)
    assert data["motions"][0]["prompt"] == index["motions"][0]["prompt"]
    assert data["title"] == "<b>mine</b> & co"


def test_bad_motions_are_skipped_and_named(folder, caplog):
    index = json.loads((folder / "index.json").read_text())
    names = [m["files"]["npy"] for m in index["motions"]]
    (folder / names[1]).unlink()
    (folder / names[2]).write_bytes(b"not a numpy file")
    np.save(folder / names[3], np.zeros((5, 21, 3), np.float32))
    with caplog.at_level("WARNING", logger="ramos.motion.viewer"):
        page = write_viewer(folder)
    assert [m["file"] for m in _page_data(page)["motions"]] == [names[0]]
    for name in names[1:]:
        assert name in caplog.text
    assert "missing" in caplog.text and "not a readable .npy" in caplog.text and "shape (5, 21, 3)" in caplog.text
    # the page says so too
    assert all(name in " ".join(_page_data(page)["skipped"]) for name in names[1:])


def test_folders_without_a_usable_motion_are_errors(folder, tmp_path):
    with pytest.raises(ViewerError, match="no index.json"):
        write_viewer(tmp_path)
    with pytest.raises(ViewerError, match="no such folder"):
        write_viewer(tmp_path / "absent")
    for npy in folder.glob("*.npy"):
        npy.unlink()
    with pytest.raises(ViewerError, match=r"no usable motion \(4 listed\).*missing"):
        write_viewer(folder)
    assert not (folder / "index.html").exists()
    (folder / "index.json").write_text("{not json")
    with pytest.raises(ViewerError, match="index.json: unreadable"):
        write_viewer(folder)
    (folder / "index.json").write_text(json.dumps({"fps": 20, "motions": [], "joints": ["a", "b"]}))
    with pytest.raises(ViewerError, match="HumanML3D"):
        write_viewer(folder)


# --- the command ------------------------------------------------------------------------------
def test_cli_writes_the_page_and_prints_its_path_and_url(folder, capsys, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    assert main(["view", str(folder), "--title", "my motions"]) == 0
    out = capsys.readouterr().out
    page = folder / "index.html"
    assert str(page) in out and page.resolve().as_uri() in out
    assert _page_data(page)["title"] == "my motions"
    assert opened == []
    assert main(["view", str(folder), "--open"]) == 0
    assert opened == [page.resolve().as_uri()]


def test_cli_bad_input_is_one_line(folder, tmp_path, capsys):
    assert main(["view", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ramos: error:") and "no such folder" in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["view", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no index.json" in err and err.count("\n") == 1
    index = json.loads((folder / "index.json").read_text())
    (folder / index["motions"][0]["files"]["npy"]).unlink()
    assert main(["view", str(folder)]) == 0  # one skipped, the page still written
    assert len(_page_data(folder / "index.html")["motions"]) == 3
    for npy in folder.glob("*.npy"):
        npy.unlink()
    assert main(["view", str(folder)]) == 2
    assert "no usable motion" in capsys.readouterr().err


# --- in a headless browser --------------------------------------------------------------------
def _chromium(tmp_path: Path, url: str, *args: str, budget_ms: int = 1500) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
           f"--virtual-time-budget={budget_ms}", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, url]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def _status(dom: str) -> dict[str, str]:
    match = re.search(r'<span id="status"([^>]*)>', dom)
    assert match, dom[:2000]
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', match.group(1)))


def _console(run: subprocess.CompletedProcess) -> list[str]:
    # Chromium writes every console message (and uncaught exception) as a CONSOLE log line; the page writes none.
    return [line for line in run.stderr.splitlines() if "CONSOLE" in line]


@needs_chromium
def test_page_plays_in_a_browser(generated, tmp_path):
    folder = Path(shutil.copytree(generated, tmp_path / "gen"))
    url = write_viewer(folder).resolve().as_uri()
    states = []
    for budget in (500, 1500):
        run = _chromium(tmp_path, url, "--dump-dom", budget_ms=budget)
        assert run.returncode == 0, run.stderr[-2000:]
        assert _console(run) == []
        states.append(_status(run.stdout))
    for s in states:
        assert s["error"] == "" and s["motions"] == str(len(CLIPS)) and s["playing"] == "1"
    early, late = states
    # the clock follows the (virtual) time and the frame advances with it; the longest clip is 2.7 s
    assert 0.2 < float(early["played"]) < float(late["played"]) < 3.0
    assert 0 < int(early["frame"]) < int(late["frame"])
    assert int(late["drawn"]) > 2


@needs_chromium
def test_address_options_and_the_other_views_run(generated, tmp_path):
    folder = Path(shutil.copytree(generated, tmp_path / "gen"))
    url = write_viewer(folder).resolve().as_uri()
    run = _chromium(tmp_path, url + "#t=1&paused&follow=0&solo=1&speed=0.5", "--dump-dom")
    assert _console(run) == []
    s = _status(run.stdout)
    assert s["error"] == "" and s["playing"] == "0" and s["frame"] == str(int(FPS))


def _near(image: np.ndarray, colour: str, tol: int = 40) -> np.ndarray:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return np.abs(image[..., :3].astype(int) - rgb).max(-1) <= tol


@needs_chromium
def test_screenshot_shows_the_figures_upright_in_their_colours(generated, tmp_path):
    from PIL import Image

    folder = Path(shutil.copytree(generated, tmp_path / "gen"))
    url = write_viewer(folder).resolve().as_uri() + "#t=0&paused"  # the first frames: everyone standing
    layout = _status(_chromium(tmp_path, url, "--dump-dom").stdout)
    shot = tmp_path / "viewer.png"
    run = _chromium(tmp_path, url, f"--screenshot={shot}")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert _console(run) == []
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (800, 1280)
    left, right = _near(image, SIDE_COLOURS[1]), _near(image, SIDE_COLOURS[-1])
    cols, rows, top = int(layout["cols"]), int(layout["rows"]), int(layout["top"])
    assert cols * rows >= len(CLIPS) and 40 < top < 300
    cw, ch = 1280 / cols, (800 - top) / rows
    for k in range(len(CLIPS)):
        r, c = divmod(k, cols)
        ys, xs = slice(int(top + r * ch), int(top + (r + 1) * ch)), slice(int(c * cw), int((c + 1) * cw))
        # every view shows both sides of its figure...
        assert left[ys, xs].sum() > 150 and right[ys, xs].sum() > 150, k
        # ...standing: the coloured limbs span a good part of the view's height, more than its width
        yy, xx = np.nonzero(left[ys, xs] | right[ys, xs])
        assert np.ptp(yy) > 0.3 * ch and np.ptp(yy) > np.ptp(xx), k
        # the floor is drawn under the figure, its shadow on it (neither white nor a limb colour)
        below = image[ys, xs][yy.max() + 3: yy.max() + 20]
        assert below.size and (below.astype(int).sum(-1) < 3 * 245).any(), k


@needs_chromium
def test_screenshot_while_playing_is_not_blank(generated, tmp_path):
    from PIL import Image

    folder = Path(shutil.copytree(generated, tmp_path / "gen"))
    shot = tmp_path / "playing.png"
    run = _chromium(tmp_path, write_viewer(folder).resolve().as_uri(), f"--screenshot={shot}", budget_ms=2000)
    assert run.returncode == 0 and _console(run) == []
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert _near(image, SIDE_COLOURS[1]).sum() > 500 and _near(image, SIDE_COLOURS[-1]).sum() > 500


# Synthetic input, replayed inside the page: drag, wheel, space, arrow key, double-click, follow box.
_INPUT_SCRIPT = """<script>
setTimeout(() => {
  const c = document.getElementById("view"), st = document.getElementById("status"), out = document.body.dataset;
  const r = c.getBoundingClientRect();
  const at = (type, x, y) => c.dispatchEvent(new PointerEvent(type, {clientX: r.left + x, clientY: r.top + y,
    pointerId: 1, pointerType: "mouse", isPrimary: true, buttons: 1, bubbles: true}));
  out.before = st.dataset.camera + "|" + st.dataset.playing;
  at("pointerdown", 100, 100); at("pointermove", 160, 130); at("pointerup", 160, 130);
  c.dispatchEvent(new WheelEvent("wheel", {deltaY: 200, bubbles: true, cancelable: true}));
  document.dispatchEvent(new KeyboardEvent("keydown", {code: "Space", key: " ", bubbles: true}));
  setTimeout(() => {
    out.after = st.dataset.camera + "|" + st.dataset.playing + "|" + st.dataset.frame;
    document.dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowRight", bubbles: true}));
    c.dispatchEvent(new MouseEvent("dblclick", {clientX: r.left + 10, clientY: r.top + 10, bubbles: true}));
    document.getElementById("follow").click();
    setTimeout(() => { out.step = st.dataset.frame + "|" + st.dataset.cols + "x" + st.dataset.rows; }, 200);
  }, 200);
}, 300);
</script>"""


@needs_chromium
def test_controls_respond(generated, tmp_path):
    folder = Path(shutil.copytree(generated, tmp_path / "gen"))
    page = write_viewer(folder)
    probe = folder / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _INPUT_SCRIPT + "</body>"), encoding="utf-8")
    run = _chromium(tmp_path, probe.resolve().as_uri(), "--dump-dom", budget_ms=2000)
    assert _console(run) == [] and _status(run.stdout)["error"] == ""
    body = dict(re.findall(r'data-([a-z]+)="([^"]*)"', re.search(r"<body([^>]*)>", run.stdout).group(1)))
    (az0, el0, zoom0), playing0 = map(float, body["before"].split("|")[0].split(",")), body["before"].split("|")[1]
    camera, playing, frame = body["after"].split("|")
    az, el, zoom = map(float, camera.split(","))
    assert playing0 == "1" and playing == "0"  # space paused it
    assert az < az0 and el > el0 and zoom > zoom0  # dragged right and down, wheeled out
    stepped, layout = body["step"].split("|")
    assert int(stepped) == int(frame) + 1 and layout == "1x1"  # arrow: one frame on; double-click: one view
