"""Batch and streaming pipeline for the UCI Online Retail e-commerce data set."""

__version__ = "0.1.0"
