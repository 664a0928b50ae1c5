"""The verified image cache: downloads, format conversion and the persistent state."""
