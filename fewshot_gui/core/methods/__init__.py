"""Few-shot methods, one file each, all with the surface of `FewShotClassifier`."""
