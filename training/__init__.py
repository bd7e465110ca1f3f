"""MicroX training scripts: dataset preparation, training, evaluation and release.

Importable from the repository root (`pytest` puts "." on the path); the library `microx_hf` never imports it.
"""
