"""``ramos view DIR``: write DIR/index.html, an offline 3D page playing the motions of a ``ramos generate`` folder.

The page is self-contained (no network): it can be opened from disk, mailed or archived with the folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "view", help="write an offline 3D viewer page (index.html) for a folder of generated motions",
        description="Read DIR/index.json (written by `ramos generate --out DIR`) and the .npy motions it lists, "
                    "and write DIR/index.html: one self-contained page that plays them side by side in 3D "
                    "(orbit camera, play/pause, time scrubber, speed, prompts, seeds and settings). "
                    "A missing or bad .npy is skipped with a warning.",
    )
    p.add_argument("folder", type=Path, metavar="DIR", help="output folder of `ramos generate`")
    p.add_argument("--title", default=None, help="page title (default: the folder's name)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import webbrowser

    from ramos.commands._args import UserError
    from ramos.motion.viewer import ViewerError, write_viewer

    try:
        page = write_viewer(args.folder, title=args.title)
    except ViewerError as exc:
        raise UserError(str(exc)) from None
    url = page.resolve().as_uri()
    print(f"ramos view: {page}")
    print(url)
    if args.open and not webbrowser.open(url):
        print("ramos view: no web browser could be started; open the URL above", file=sys.stderr)
    return 0
