"""Builds the Cython half of core_ext; all metadata lives in setup.cfg."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "core_ext._batcher",
        ["core_ext/_batcher.pyx"],
        extra_compile_args=["-O3"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
