"""Small pieces of plumbing every layer uses, each written once: atomic files, file-safe
names, "did you mean" suggestions, one-line failure reasons, importing a user's file.

Nothing here imports torch or any other part of alrao, so every layer may use it.
"""
