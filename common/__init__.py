"""The shared ground every layer stands on: error kinds, paths and atomic
writes, hashing, MAC addresses, records, TOML data and bounded YAML, child
process groups, and how a doit run ends.  Imports nothing of the project."""
