"""Where architectures come from: the registry (register, list, look up), the ARCH
grammar (:mod:`.arch`) and building a model for the data (:mod:`.build`)."""
