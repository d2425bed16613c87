"""fastinfo: fast, tested InfoGAN-family models and fused information-theoretic losses."""

__version__ = "0.1.0"
