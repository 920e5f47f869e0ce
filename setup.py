"""The one compiled part: the C fingerprint walk (forkcheck/_app/_cfingerprint.c).

It is optional: where it does not build (no C compiler, a Python other than
3.11, 3.12 and 3.13), forkcheck uses the Python walk, which gives the same
fingerprints.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("forkcheck._app._cfingerprint", ["forkcheck/_app/_cfingerprint.c"], optional=True)])
