"""Core layer: errors, the vocabulary, calendar conventions, paths, atomic I/O and the records
shape. Imports nothing else from `helpers`."""
