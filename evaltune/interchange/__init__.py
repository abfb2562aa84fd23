"""Ways in and out for the tools teams already use: Label Studio and Argilla (a rating campaign's tasks out, their
annotations back in as ratings), Hugging Face ``datasets`` (ratings and training data as Parquet, or pushed to the
hub). lm-evaluation-harness task files come in through the suite loaders (``harness.loaders.lm_eval_task``)."""
