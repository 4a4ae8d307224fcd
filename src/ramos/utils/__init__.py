"""Small shared helpers: atomic file writing, buildable specs, safe checkpoint loading, config."""
