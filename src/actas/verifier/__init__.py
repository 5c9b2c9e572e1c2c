"""Runs core.verify over a bundle directory or URL, spreading bundle checks over every core."""
