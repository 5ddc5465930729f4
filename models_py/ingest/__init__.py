"""Ingest: what puts data into schema `raw` (loaders of public datasets, the synthetic
generator), the raw input contract and writer, product-group rules and campaign configuration."""
