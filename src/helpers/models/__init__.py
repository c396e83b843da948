"""Model layer: numbers only (design matrices, ITS, batch fits, comparative designs, synthetic
control, inference). No prose, no matplotlib, no file I/O."""
