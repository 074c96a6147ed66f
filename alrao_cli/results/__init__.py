"""Results as data: the saved records of runs and studies, and the rankings computed from them.

Nothing here imports torch or the training code, so a run directory can be read and
reported on anywhere."""
