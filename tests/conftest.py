"""Shared test set-up: small, deterministic, and quiet."""

import torch

torch.set_num_threads(2)
