"""Statistics over scores: intervals, paired comparisons, counterfactual gaps. No model, no store."""
