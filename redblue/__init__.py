"""redblue: a Kafka-native arena where teams' stock-forecasting models compete."""

__version__ = "0.1.0"
