"""`python -m training.synthetic`: write a folder of synthetic clips."""

from .dataset import main

main()
