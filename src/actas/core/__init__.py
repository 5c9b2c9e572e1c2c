"""Pure core: parsing, hashing, signing, verifying and tallying given bytes. No I/O, clock or randomness."""
