"""Models that scorers share (sentence embeddings, NLI and judge models), loaded once and lazily."""
