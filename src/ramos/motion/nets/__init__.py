"""Motion networks: pose encoders/decoders, motion encoders/decoders, latent denoisers."""
