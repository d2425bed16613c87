"""Plain setuptools: the Triton kernels in kernels/ install as the subpackage fastinfo.kernels."""

from setuptools import setup

setup(
    packages=["fastinfo", "fastinfo.losses", "fastinfo.kernels"],
    package_dir={"fastinfo": "fastinfo", "fastinfo.kernels": "kernels"},
)
