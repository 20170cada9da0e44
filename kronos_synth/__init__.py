"""kronos-synth: synthetic K-line data with the Kronos foundation model, and its evaluation."""

__version__ = "0.1.0"
