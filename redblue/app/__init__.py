"""redblue.app."""
