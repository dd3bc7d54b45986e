"""The compiler's output: NetX HDF5 read/write (`netx`) and the atomic emit of net + report (`emit`)."""
