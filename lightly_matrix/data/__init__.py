"""Pretraining data: the offline digits (:mod:`.digits`) and image folders (:mod:`.folder`)."""
