"""Stage 3, the pose VAE study (``ramos study pose-vae``): single poses (:mod:`.data`), a skeleton graph
network against an MLP of the same size (:mod:`.study`). Networks: :mod:`ramos.motion.nets.pose`."""
