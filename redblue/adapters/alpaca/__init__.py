"""redblue.adapters.alpaca."""
