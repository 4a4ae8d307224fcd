"""The pipeline's stages, one place each; every stage reads files and writes files.

    data/              ramos data prepare / analyze: source files -> prepared data set folder
    pose_vae/          ramos study pose-vae: single poses, skeleton graph network vs MLP
    motion_vae/        ramos train motion-vae, ramos analyze latents: windows -> latent vectors
    motion_diffusion   ramos train motion-diffusion: latent diffusion, guidance distillation, decoder tuning
    raw_baseline       ramos train raw-baseline: the MDM-style diffusion on raw motion
    evaluation/        ramos evaluate: generated against real motion
    pipeline           ramos pipeline: all of the above in order, resumable
    mnist/             ramos mnist: the MNIST template of the same recipe

Stages are built from the generic blocks below them (:mod:`ramos.motion`, :mod:`ramos.diffusion`,
:mod:`ramos.vae`, :mod:`ramos.mnist`, :mod:`ramos.utils`) and called by :mod:`ramos.commands`;
no block imports a stage (``tests/test_architecture.py``).
"""
