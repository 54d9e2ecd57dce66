"""redblue.adapters."""
