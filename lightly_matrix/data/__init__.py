"""Datasets: the offline digits set and image folders for pretraining (:mod:`.digits`, :mod:`.folder`)."""
