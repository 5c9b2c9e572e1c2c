"""The results service: ingest with receipts, the sequencer, the live read side, witnesses, the station client."""
