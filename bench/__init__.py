"""Benchmarks: each prints a table for people and a final JSON line with every figure."""
