"""Loss functions as pure functions of tensors, each returning ``(loss, stats)``."""
