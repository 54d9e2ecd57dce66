"""redblue.adapters.mlflow."""
