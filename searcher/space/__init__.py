"""The search space: quantizer and mask, CompConv, edge ops, search cell, supernet, genotype."""
