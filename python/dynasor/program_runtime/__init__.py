"""Application runtime: policies, backends and the program runner."""
