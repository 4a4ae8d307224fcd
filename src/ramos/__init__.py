"""RaMoS: rapid human-motion synthesis by reverse diffusion in a learned latent space."""

import os

# Idle OpenMP threads spin by default; on a shared 2-core machine that made torch 10-20x slower
# (measured during development). Set before torch is imported; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
