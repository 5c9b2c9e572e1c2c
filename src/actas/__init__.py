"""actas: election results with their tally sheets, in a public, verifiable Merkle log."""

__version__ = "0.1.0"
