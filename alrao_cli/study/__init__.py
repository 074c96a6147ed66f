"""Running a study: the run spec, the plan, the training methods, one run's training loop and
checkpoints, the executor and the driver that saves results as runs end, and `alrao check`."""
