"""The template Manifold plugin. Copy this folder to start your own (see README.md)."""
