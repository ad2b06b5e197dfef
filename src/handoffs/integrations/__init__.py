"""The outside world: the AI assessor (anthropic SDK) and the PSA adapters."""
