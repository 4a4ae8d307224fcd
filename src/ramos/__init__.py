"""RaMoS: rapid human-motion synthesis by reverse diffusion in a learned latent space."""

__version__ = "0.1.0"
