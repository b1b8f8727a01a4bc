"""One-off studies: questions asked of a trained model's held-out outputs (a blend, smoothing, a tone correction, a
map built after the network, the error's scale, feeding outputs back, a trust block for a model without a prior).
Their answers are in docs/research-log.md; none of them makes a shipped model (training/ does)."""
