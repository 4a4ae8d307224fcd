"""Stage 4, the motion VAE: training and held-out metrics (:mod:`.train`, ``ramos train motion-vae``)
and the analysis of its latent space (:mod:`.latents`, ``ramos analyze latents``). Networks:
:mod:`ramos.motion.nets.motion`; loss: :mod:`ramos.motion.losses`."""
