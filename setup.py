from setuptools import setup

setup(cffi_modules=["c_src/build_native.py:ffibuilder"])
