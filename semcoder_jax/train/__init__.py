"""The sharded trainer: mesh, sharding rules, packed input, loss, optimiser, checkpoints, metrics."""
