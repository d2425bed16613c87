"""fastinfo: fast, tested InfoGAN-family models and fused information-theoretic losses."""

from fastinfo import startup

__version__ = "0.1.0"

# first, before any slow import: a command interrupted while it starts ends with one line
startup.guard()
