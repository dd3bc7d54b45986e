"""`lsnn compare`: gather finished `lsnn search` run directories into one table, group the runs
by (strategy, cost point) with the mean and spread over seeds, and draw the accuracy / cost
Pareto fronts (accuracy vs Bit-SynOps and vs model size) of each strategy."""
