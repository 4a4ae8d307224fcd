"""Human motion: skeleton, readers, preprocessing, networks, metrics, rendering and export."""
