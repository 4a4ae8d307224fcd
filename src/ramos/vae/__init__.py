"""Generic variational autoencoder stage (networks and reconstruction loss injected)."""

from ramos.vae.module import VAEModule, gaussian_kl

__all__ = ["VAEModule", "gaussian_kl"]
