"""redblue.core."""
