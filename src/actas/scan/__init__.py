"""Paper copies: printable actas, photo simulation, QR scanning."""
