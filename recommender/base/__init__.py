"""The lowest layer: configuration, errors, the plain records passed between stages, and text helpers."""
