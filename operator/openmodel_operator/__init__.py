"""OpenModel Operator: a trusted lifecycle for open AI models on Kubernetes."""

__version__ = "0.1.0"
