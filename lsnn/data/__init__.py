"""Datasets shared by search and run: the registry and split container (`datasets`), CIFAR
(`cifar`), Speech Commands (`gsc`, with `mfcc` features), archive extraction and caches (`archive`)."""
